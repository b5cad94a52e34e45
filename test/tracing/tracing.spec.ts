import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { context, type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidOptionsError } from '../../lib/index.js';
import { createTestBuffer, drain } from '../../lib/testing/index.js';
import { instrumentTracing, SPAN_ATTRIBUTES } from '../../lib/tracing/index.js';
import { PushLinks } from '../../lib/tracing/push-links.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('test');
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
});
afterAll(async () => {
  context.disable();
  await provider.shutdown();
});
beforeEach(() => exporter.reset());

/** Runs `body` inside a new active span, as a request handler would; returns the span. */
async function inSpan(name: string, body: () => Promise<unknown>): Promise<Span> {
  return tracer.startActiveSpan(name, async (span) => {
    try {
      await body();
    } finally {
      span.end();
    }
    return span;
  });
}

function spans(name: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.name === name);
}

describe('instrumentTracing', () => {
  it('makes a span per worker call with its attributes, linked to the spans that pushed its records', async () => {
    const buffer = createTestBuffer<number>({ name: 'orders', worker: () => {} });
    instrumentTracing(buffer, { tracerProvider: provider });

    const a = await inSpan('POST /orders a', () => buffer.push([1, 2]));
    const b = await inSpan('POST /orders b', () => buffer.push(3));
    await buffer.push(4); // no active span: no link
    // Flushed from within a span: by default, the worker span still starts a trace of its own.
    const flusher = await inSpan('flusher', () => drain(buffer));

    const [work, ...more] = spans('bufio.work orders');
    expect(more).toEqual([]);
    expect(work?.attributes).toEqual({
      [SPAN_ATTRIBUTES.buffer]: 'orders',
      [SPAN_ATTRIBUTES.batchSize]: 4,
      [SPAN_ATTRIBUTES.attempt]: 1,
      [SPAN_ATTRIBUTES.outcome]: 'processed',
      [SPAN_ATTRIBUTES.failed]: 0,
    });
    expect(work?.status.code).toBe(SpanStatusCode.UNSET);
    expect(work?.links.map((l) => [l.context.spanId, l.attributes])).toEqual([
      [a.spanContext().spanId, { 'bufio.records': 2 }],
      [b.spanContext().spanId, { 'bufio.records': 1 }],
    ]);
    // A trace of its own: whatever happened to dispatch the batch is not its parent.
    expect(work?.parentSpanContext).toBeUndefined();
    expect(work?.spanContext().traceId).not.toBe(flusher.spanContext().traceId);
    expect(work?.spanContext().traceId).not.toBe(a.spanContext().traceId);
  });

  it("runs the worker in the span's context, so the worker's own spans are its children", async () => {
    const buffer = createTestBuffer<number>({
      name: 'orders',
      worker: async () => {
        await sleep(1); // across an await, as a database call is
        await tracer.startActiveSpan('INSERT orders', async (db) => {
          await sleep(1);
          db.end();
        });
      },
    });
    instrumentTracing(buffer, { tracerProvider: provider });
    await buffer.push([1, 2, 3]);
    await drain(buffer);
    const [work] = spans('bufio.work orders');
    const [insert] = spans('INSERT orders');
    expect(insert?.parentSpanContext?.spanId).toBe(work?.spanContext().spanId);
    expect(insert?.spanContext().traceId).toBe(work?.spanContext().traceId);
  });

  it('marks failed calls ERROR with the exception, partial failures ERROR with the count, and retries with their attempt', async () => {
    let calls = 0;
    const buffer = createTestBuffer<number>({
      name: 'orders',
      retry: { maxAttempts: 2 },
      worker: (records) => {
        calls++;
        if (calls === 1) throw new Error('database is down');
        return records.map((r) => (r === 2 ? new Error('bad record') : r));
      },
    });
    instrumentTracing(buffer, { tracerProvider: provider });
    const pusher = await inSpan('POST /orders', () => buffer.push([1, 2, 3]));
    await drain(buffer);

    const [failed, partial, ...rest] = spans('bufio.work orders');
    expect(failed?.attributes).toMatchObject({
      [SPAN_ATTRIBUTES.attempt]: 1,
      [SPAN_ATTRIBUTES.outcome]: 'failed',
      [SPAN_ATTRIBUTES.failed]: 3,
    });
    expect(failed?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'database is down' });
    expect(failed?.events.map((e) => [e.name, e.attributes?.['exception.message']])).toEqual([
      ['exception', 'database is down'],
    ]);
    expect(failed?.links.map((l) => l.context.spanId)).toEqual([pusher.spanContext().spanId]);

    expect(partial?.attributes).toMatchObject({
      [SPAN_ATTRIBUTES.attempt]: 2,
      [SPAN_ATTRIBUTES.batchSize]: 3,
      [SPAN_ATTRIBUTES.outcome]: 'partial',
      [SPAN_ATTRIBUTES.failed]: 1,
    });
    expect(partial?.status).toEqual({
      code: SpanStatusCode.ERROR,
      message: '1 of 3 record(s) failed',
    });
    // Links are used once, by the first call of the records.
    expect(partial?.links).toEqual([]);
    expect(rest).toEqual([]); // record 2 was dead-lettered after its second attempt
  });

  it('keeps at most maxPendingLinks entries, forgetting the oldest, and none once used', async () => {
    const buffer = createTestBuffer<number>({ name: 'orders', worker: () => {} });
    const tracing = instrumentTracing(buffer, { tracerProvider: provider, maxPendingLinks: 3 });
    const pushers: Span[] = [];
    for (let i = 0; i < 5; i++) pushers.push(await inSpan(`push ${i}`, () => buffer.push(i)));
    expect(tracing.pendingLinks).toBe(3);
    await drain(buffer);
    expect(tracing.pendingLinks).toBe(0);
    const [work] = spans('bufio.work orders');
    expect(work?.links.map((l) => l.context.spanId)).toEqual(
      pushers.slice(2).map((p) => p.spanContext().spanId),
    );
  });

  it('puts at most maxLinksPerSpan links on a span and counts the others', async () => {
    const buffer = createTestBuffer<number>({ name: 'orders', worker: () => {} });
    instrumentTracing(buffer, { tracerProvider: provider, maxLinksPerSpan: 2 });
    for (let i = 0; i < 3; i++) await inSpan(`push ${i}`, () => buffer.push(i));
    await drain(buffer);
    const [work] = spans('bufio.work orders');
    expect(work?.links).toHaveLength(2);
    expect(work?.attributes[SPAN_ATTRIBUTES.linksDropped]).toBe(1);
  });

  it('with root: false, parents the span on the context that dispatched the batch', async () => {
    const buffer = createTestBuffer<number>({ name: 'orders', worker: () => {} });
    instrumentTracing(buffer, { tracerProvider: provider, root: false });
    await buffer.push(1);
    const job = await inSpan('nightly job', () => buffer.flush());
    const [work] = spans('bufio.work orders');
    expect(work?.parentSpanContext?.spanId).toBe(job.spanContext().spanId);
  });

  it('uses the global tracer provider by default, and stops on detach()', async () => {
    trace.setGlobalTracerProvider(provider);
    try {
      const buffer = createTestBuffer<number>({ name: 'global', worker: () => {} });
      const tracing = instrumentTracing(buffer);
      await inSpan('push', () => buffer.push(1));
      await drain(buffer);
      expect(spans('bufio.work global')).toHaveLength(1);

      await inSpan('push', () => buffer.push(2));
      tracing.detach();
      expect(tracing.pendingLinks).toBe(0);
      await drain(buffer);
      expect(spans('bufio.work global')).toHaveLength(1);
      expect(buffer.stats().processed).toBe(2);
    } finally {
      trace.disable();
    }
  });

  it('refuses wrong options, naming option and value', () => {
    const buffer = createTestBuffer<number>({ name: 'orders', worker: () => {} });
    expect(() => instrumentTracing(buffer, { maxPendingLinks: -1 })).toThrow(InvalidOptionsError);
    expect(() => instrumentTracing(buffer, { maxPendingLinks: -1 })).toThrow(
      'tracing of buffer "orders": invalid option "maxPendingLinks": got -1, expected an integer >= 0',
    );
    expect(() => instrumentTracing(buffer, { tracerProvider: {} as never })).toThrow(
      'invalid option "tracerProvider": got {}, expected a TracerProvider (an object with getTracer())',
    );
    expect(() => instrumentTracing(buffer, { root: 'yes' } as never)).toThrow(
      'invalid option "root": got "yes", expected true or false',
    );
  });
});

describe('PushLinks', () => {
  const span = (n: number) => ({
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: `b7ad6b71692033${String(n).padStart(2, '0')}`,
    traceFlags: 1,
  });

  it('keeps the links of the last `capacity` records remembered, taken or not', () => {
    const links = new PushLinks(3);
    links.remember([1, 2, 3], span(1));
    expect(links.take([1], 10).links).toHaveLength(1);
    expect(links.size).toBe(2);
    links.remember([4], span(2)); // reuses the slot of 1, taken already: nothing forgotten
    expect(links.size).toBe(3);
    links.remember([5], span(2)); // 2 is the oldest: forgotten
    expect(links.size).toBe(3);
    const taken = links.take([2, 3, 4, 5], 10);
    expect(taken.links.map((l) => [l.context.spanId, l.attributes])).toEqual([
      [span(1).spanId, { 'bufio.records': 1 }],
      [span(2).spanId, { 'bufio.records': 2 }],
    ]);
    expect(links.size).toBe(0);
  });

  it('remembers nothing with capacity 0', () => {
    const links = new PushLinks(0);
    links.remember([1, 2], span(1));
    expect(links.size).toBe(0);
    expect(links.take([1, 2], 10)).toEqual({ links: [], dropped: 0 });
  });
});
