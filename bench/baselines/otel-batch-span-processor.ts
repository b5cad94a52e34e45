import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import type { Batcher, BatchWorker } from '../batcher.js';

type ExportCallback = Parameters<SpanExporter['export']>[1];
type ExportResult = Parameters<ExportCallback>[0];
// ExportResultCode.SUCCESS, without importing @opentelemetry/core (not a direct dependency).
const SUCCESS = { code: 0 } as ExportResult;

/**
 * Spans made once, before any timing, by a tracer with no processor: the records OpenTelemetry's
 * batch processor takes. Sampled (the default sampler), so `onEnd` queues them.
 */
export function premadeSpans(count: number): ReadableSpan[] {
  const tracer = new BasicTracerProvider().getTracer('bufio-bench');
  const spans: ReadableSpan[] = [];
  for (let i = 0; i < count; i++) {
    const span = tracer.startSpan('record', { attributes: { id: i } });
    span.end();
    spans.push(span as unknown as ReadableSpan);
  }
  return spans;
}

/**
 * OpenTelemetry's `BatchSpanProcessor` as a batcher: `push` is `onEnd(span)`, the exporter is the
 * worker (it answers at once), `drain` is `forceFlush()`. `maxQueueSize` is set high enough that
 * it never drops a span in these runs (it drops silently when full); the suites check the count.
 */
export function otelBatcher(
  worker: BatchWorker<ReadableSpan>,
  options: { batchSize: number; flushInterval: number; capacity: number },
): Batcher<ReadableSpan> {
  const exporter: SpanExporter = {
    export(spans, resultCallback) {
      const done = worker(spans as ReadableSpan[]);
      if (done instanceof Promise) done.then(() => resultCallback(SUCCESS));
      else resultCallback(SUCCESS);
    },
    shutdown: () => Promise.resolve(),
  };
  const processor = new BatchSpanProcessor(exporter, {
    maxExportBatchSize: options.batchSize,
    scheduledDelayMillis: options.flushInterval,
    maxQueueSize: options.capacity,
  });
  return {
    push: (span) => processor.onEnd(span),
    drain: () => processor.forceFlush(),
    close: () => processor.shutdown(),
  };
}
