import { describe, expect, it } from '@jest/globals';
import { Counter, register, Registry } from 'prom-client';
import {
  BufferFullError,
  BufIO,
  InvalidOptionsError,
  InvalidRecordError,
  UnreadableRecordError,
} from '../../lib/index.js';
import { BufIOMetrics, instrumentMetrics, METRIC_NAMES } from '../../lib/metrics/index.js';
import { createTestBuffer, drain } from '../../lib/testing/index.js';
import { outcomes, sample } from '../support/prometheus.js';
import { DurableState, ScriptedStorage } from '../support/scripted-storage.js';

/** A worker that fails every record whose value is negative, and processes the others. */
const failNegatives = (records: number[]): (number | Error)[] =>
  records.map((r) => (r < 0 ? new Error(`negative: ${r}`) : r));

describe('BufIOMetrics', () => {
  it('reports the counters of stats() at scrape, by outcome, and histograms of worker calls', async () => {
    const registry = new Registry();
    const buffer = createTestBuffer<number>({
      name: 'orders',
      worker: failNegatives,
      batchSize: 4,
      maxBufferedRecords: 50,
      retry: { maxAttempts: 2 },
    });
    instrumentMetrics(buffer, { registry });

    await buffer.push([1, 2, -3, 4, 5, -6, 7, 8, 9, 10]);
    // Nothing processed yet: counters read live, gauges show what waits.
    expect(await outcomes(registry, 'orders')).toEqual({
      pushed: 10,
      processed: 0,
      failed: 0,
      retried: 0,
      dropped: 0,
      dead_lettered: 0,
      coalesced: 0,
      refused: 0,
      unreadable: 0,
    });
    expect(await sample(registry, METRIC_NAMES.buffered, { buffer: 'orders' })).toBe(10);
    expect(await sample(registry, METRIC_NAMES.capacity, { buffer: 'orders' })).toBe(50);

    await drain(buffer);
    // -3 and -6 fail twice (maxAttempts 2): 4 failed attempts, 2 retries, 2 dead letters.
    expect(await outcomes(registry, 'orders')).toEqual({
      pushed: 10,
      processed: 8,
      failed: 4,
      retried: 2,
      dropped: 0,
      dead_lettered: 2,
      coalesced: 0,
      refused: 0,
      unreadable: 0,
    });
    expect(await sample(registry, METRIC_NAMES.buffered, { buffer: 'orders' })).toBe(0);
    const { batches } = buffer.stats();
    // Worker calls: 3 batches of fresh records (4 + 4 + 2), then the retries.
    expect(
      await sample(
        registry,
        METRIC_NAMES.batchSize,
        { buffer: 'orders' },
        'bufio_batch_size_count',
      ),
    ).toBe(batches);
    expect(
      await sample(registry, METRIC_NAMES.batchSize, { buffer: 'orders' }, 'bufio_batch_size_sum'),
    ).toBe(12); // 10 records, 2 of them twice
    expect(
      await sample(
        registry,
        METRIC_NAMES.batchSize,
        { buffer: 'orders', le: 4 },
        'bufio_batch_size_bucket',
      ),
    ).toBeUndefined(); // 4 is not a bucket bound: the default bounds are 1, 5, 10, ...
    expect(
      await sample(
        registry,
        METRIC_NAMES.batchSize,
        { buffer: 'orders', le: 5 },
        'bufio_batch_size_bucket',
      ),
    ).toBe(batches);
    expect(
      await sample(
        registry,
        METRIC_NAMES.duration,
        { buffer: 'orders' },
        'bufio_work_duration_seconds_count',
      ),
    ).toBe(batches);
  });

  it('counts dropped and coalesced records', async () => {
    const registry = new Registry();
    const buffer = createTestBuffer<{ key: string; n: number }>({
      name: 'counters',
      worker: () => {},
      batchSize: 2,
      maxBufferedRecords: 2,
      onFull: 'drop-newest',
      coalesce: { key: (r) => r.key, merge: (a, b) => ({ key: a.key, n: a.n + b.n }) },
    });
    instrumentMetrics(buffer, { registry });
    await buffer.push([
      { key: 'a', n: 1 },
      { key: 'b', n: 1 },
      { key: 'a', n: 1 }, // merged into the waiting "a"
    ]);
    await buffer.push({ key: 'c', n: 1 }); // full: dropped
    expect(await outcomes(registry, 'counters')).toMatchObject({
      pushed: 3,
      coalesced: 1,
      dropped: 1,
    });
  });

  it('counts refused pushes and records the storage could not read back', async () => {
    const registry = new Registry();
    const state = new DurableState<number>();
    const storage = new ScriptedStorage(state);
    storage.append([1]);
    state.plantUnreadable(-1);
    const buffer = new BufIO<number>({
      name: 'refusals',
      storage,
      worker: () => {},
      batchSize: 3,
      maxBufferedRecords: 3,
      onFull: 'error',
    });
    instrumentMetrics(buffer, { registry });
    const errors: Error[] = [];
    buffer.on('error', (error) => errors.push(error));
    buffer.start();
    await drain(buffer);
    await buffer.push([2, 3]);
    await expect(buffer.push([4, 5])).rejects.toBeInstanceOf(BufferFullError); // 2 refused
    await expect(buffer.push(undefined as unknown as number)).rejects.toBeInstanceOf(
      InvalidRecordError,
    );
    await buffer.stop();
    expect(await outcomes(registry, 'refusals')).toMatchObject({
      pushed: 2, // 1 was in the storage already
      processed: 3,
      refused: 3,
      unreadable: 1,
    });
    expect(errors).toEqual([expect.any(UnreadableRecordError)]);
  });

  it('exposes the Prometheus text format with the documented names and labels', async () => {
    const registry = new Registry();
    const buffer = createTestBuffer<number>({ name: 'events', worker: () => {} });
    instrumentMetrics(buffer, { registry });
    await buffer.push([1, 2, 3]);
    await drain(buffer);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE bufio_records_total counter');
    expect(text).toContain('bufio_records_total{buffer="events",outcome="pushed"} 3');
    expect(text).toContain('bufio_records_total{buffer="events",outcome="processed"} 3');
    for (const outcome of ['failed', 'retried', 'dropped', 'dead_lettered', 'coalesced']) {
      expect(text).toContain(`bufio_records_total{buffer="events",outcome="${outcome}"} 0`);
    }
    expect(text).toContain('# TYPE bufio_buffered_records gauge');
    expect(text).toContain('bufio_buffered_records{buffer="events"} 0');
    expect(text).toContain('# TYPE bufio_capacity_records gauge');
    expect(text).toContain('bufio_capacity_records{buffer="events"} 100000');
    expect(text).toContain('# TYPE bufio_in_flight_records gauge');
    expect(text).toContain('bufio_in_flight_records{buffer="events"} 0');
    expect(text).toContain('# TYPE bufio_batch_size histogram');
    expect(text).toContain('bufio_batch_size_sum{buffer="events"} 3');
    expect(text).toContain('# TYPE bufio_work_duration_seconds histogram');
    expect(text).toContain('bufio_work_duration_seconds_count{buffer="events"} 1');
  });

  it('registers once per registry, however many buffers and callers share it', async () => {
    const registry = new Registry();
    const a = createTestBuffer<number>({ name: 'a', worker: () => {} });
    const b = createTestBuffer<number>({ name: 'b', worker: () => {} });
    const first = BufIOMetrics.forRegistry({ registry });
    expect(BufIOMetrics.forRegistry({ registry })).toBe(first);
    instrumentMetrics(a, { registry });
    instrumentMetrics(b, { registry });
    // Attaching twice does not count twice.
    expect(first.attach(a)).toBe(first.attach(a));
    expect(first.buffers()).toEqual(['a', 'b']);
    await a.push([1, 2]);
    await b.push(3);
    expect(await sample(registry, 'bufio_records_total', { buffer: 'a', outcome: 'pushed' })).toBe(
      2,
    );
    expect(await sample(registry, 'bufio_records_total', { buffer: 'b', outcome: 'pushed' })).toBe(
      1,
    );
    expect(registry.getMetricsAsArray().map((m) => m.name)).toEqual(Object.values(METRIC_NAMES));
  });

  it("uses prom-client's default registry when none is given", async () => {
    const buffer = createTestBuffer<number>({ name: 'default-registry', worker: () => {} });
    const attachment = instrumentMetrics(buffer);
    await buffer.push(1);
    expect(
      await sample(register, 'bufio_records_total', {
        buffer: 'default-registry',
        outcome: 'pushed',
      }),
    ).toBe(1);
    attachment.detach();
    BufIOMetrics.forRegistry().close();
    expect(register.getSingleMetric('bufio_records_total')).toBeUndefined();
  });

  it('sums buffers with the same name (two applications in one process)', async () => {
    const registry = new Registry();
    const one = createTestBuffer<number>({ name: 'events', worker: () => {} });
    const two = createTestBuffer<number>({ name: 'events', worker: () => {} });
    instrumentMetrics(one, { registry });
    instrumentMetrics(two, { registry });
    await one.push([1, 2]);
    await two.push([3, 4, 5]);
    expect(
      await sample(registry, 'bufio_records_total', { buffer: 'events', outcome: 'pushed' }),
    ).toBe(5);
    expect(await sample(registry, METRIC_NAMES.buffered, { buffer: 'events' })).toBe(5);
  });

  it('keeps the totals of a detached buffer (counters never go down) and drops its gauges', async () => {
    const registry = new Registry();
    const buffer = createTestBuffer<number>({ name: 'gone', worker: () => {} });
    const attachment = instrumentMetrics(buffer, { registry });
    await buffer.push([1, 2, 3]);
    await drain(buffer);
    attachment.detach();
    attachment.detach(); // idempotent

    await buffer.push([4, 5]);
    await drain(buffer);
    expect(
      await sample(registry, 'bufio_records_total', { buffer: 'gone', outcome: 'pushed' }),
    ).toBe(3);
    expect(await sample(registry, METRIC_NAMES.buffered, { buffer: 'gone' })).toBeUndefined();
    // The worker call after detach was not observed.
    expect(
      await sample(registry, METRIC_NAMES.batchSize, { buffer: 'gone' }, 'bufio_batch_size_count'),
    ).toBe(1);

    // Attached again: live counts on top of what was kept (3 + 5 pushed in all).
    BufIOMetrics.forRegistry({ registry }).attach(buffer);
    expect(
      await sample(registry, 'bufio_records_total', { buffer: 'gone', outcome: 'pushed' }),
    ).toBe(8);
    await buffer.push(6);
    await drain(buffer);
    expect(
      await sample(registry, METRIC_NAMES.batchSize, { buffer: 'gone' }, 'bufio_batch_size_count'),
    ).toBe(2);
  });

  it('lets a buffer go once it has drained at stop(), keeping its totals', async () => {
    const registry = new Registry();
    const buffer = new BufIO<number>({ name: 'stopping', worker: () => {}, flushInterval: 60_000 });
    const metrics = BufIOMetrics.forRegistry({ registry });
    metrics.attach(buffer);
    buffer.start();
    await buffer.push([1, 2, 3, 4]);
    await buffer.stop();
    expect(metrics.buffers()).toEqual([]);
    expect(await outcomes(registry, 'stopping')).toMatchObject({ pushed: 4, processed: 4 });
    expect(await sample(registry, METRIC_NAMES.buffered, { buffer: 'stopping' })).toBeUndefined();
  });

  it('registers its metrics again after registry.clear()', async () => {
    const registry = new Registry();
    const buffer = createTestBuffer<number>({ name: 'cleared', worker: () => {} });
    instrumentMetrics(buffer, { registry });
    registry.clear();
    expect(registry.getSingleMetric('bufio_records_total')).toBeUndefined();
    instrumentMetrics(buffer, { registry });
    await buffer.push(1);
    expect(
      await sample(registry, 'bufio_records_total', { buffer: 'cleared', outcome: 'pushed' }),
    ).toBe(1);
  });

  it('close() detaches every buffer and unregisters the metrics', async () => {
    const registry = new Registry();
    const closed = createTestBuffer<number>({ name: 'closed', worker: () => {} });
    const other = createTestBuffer<number>({ name: 'other', worker: () => {} });
    const metrics = BufIOMetrics.forRegistry({ registry });
    metrics.attach(closed);
    metrics.attach(other);
    expect([...metrics.buffers()].sort()).toEqual(['closed', 'other']);
    metrics.close();
    expect(metrics.buffers()).toEqual([]);
    expect(registry.getMetricsAsArray()).toEqual([]);
    // A new instance starts afresh.
    expect(BufIOMetrics.forRegistry({ registry })).not.toBe(metrics);
  });

  it('refuses a registry where another module registered one of its names', () => {
    const registry = new Registry();
    new Counter({ name: 'bufio_records_total', help: 'not ours', registers: [registry] });
    const attempt = (): BufIOMetrics => BufIOMetrics.forRegistry({ registry });
    expect(attempt).toThrow(InvalidOptionsError);
    expect(attempt).toThrow(
      /invalid option "registry".*expected a registry where "bufio_records_total" is not registered yet: it was registered by something other than @risemaxi\/bufio\/metrics/,
    );
  });

  it('refuses wrong options, naming option and value', () => {
    const registry = new Registry();
    expect(() => BufIOMetrics.forRegistry({ registry: {} as Registry })).toThrow(
      'BufIOMetrics: invalid option "registry": got {}, expected a prom-client Registry',
    );
    expect(() => BufIOMetrics.forRegistry({ registry, batchSizeBuckets: [10, 5] })).toThrow(
      'BufIOMetrics: invalid option "batchSizeBuckets": got an array of length 2, expected a non-empty array of finite, positive, strictly increasing numbers',
    );
    expect(() =>
      BufIOMetrics.forRegistry({ registry, buckets: [1] } as unknown as { registry: Registry }),
    ).toThrow(
      'BufIOMetrics: invalid option "buckets": got an array of length 1, expected no such option',
    );
    const metrics = BufIOMetrics.forRegistry({ registry, durationBuckets: [0.1, 1] });
    expect(metrics.durationBuckets).toEqual([0.1, 1]);
    // Same buckets, or none: the shared instance. Others: refused, the metrics exist already.
    expect(BufIOMetrics.forRegistry({ registry, durationBuckets: [0.1, 1] })).toBe(metrics);
    expect(BufIOMetrics.forRegistry({ registry })).toBe(metrics);
    expect(() => BufIOMetrics.forRegistry({ registry, durationBuckets: [1, 2] })).toThrow(
      'expected the buckets the BufIO metrics of this registry already use ([0.1, 1]), or none',
    );
  });
});
