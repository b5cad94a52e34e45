import { Counter, Gauge, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { BufIO, BufIOStats } from '../core/bufio.js';
import { InvalidOptionsError } from '../core/errors.js';
import type { Instrumentation, WorkCall, WorkReport } from '../core/instrumentation.js';
import {
  type BufIOMetricsOptions,
  DEFAULT_BATCH_SIZE_BUCKETS,
  DEFAULT_DURATION_BUCKETS,
  type ResolvedMetricsOptions,
  resolveMetricsOptions,
} from './metrics-options.js';

/** The `outcome` label of `bufio_records_total`, by the `stats()` counter it is read from. */
const OUTCOMES = {
  pushed: 'pushed',
  processed: 'processed',
  failed: 'failed',
  retried: 'retried',
  dropped: 'dropped',
  deadLettered: 'dead_lettered',
  coalesced: 'coalesced',
  refused: 'refused',
  unreadable: 'unreadable',
} as const;

type Counted = keyof typeof OUTCOMES;
type Totals = Record<Counted, number>;
const COUNTED = Object.keys(OUTCOMES) as Counted[];

/** The names this module registers; a registry holding one of them from elsewhere is refused. */
export const METRIC_NAMES = {
  records: 'bufio_records_total',
  buffered: 'bufio_buffered_records',
  capacity: 'bufio_capacity_records',
  inFlight: 'bufio_in_flight_records',
  batchSize: 'bufio_batch_size',
  duration: 'bufio_work_duration_seconds',
} as const;

/** A buffer being measured. */
export interface MetricsAttachment {
  /** The buffer's name, its `buffer` label. */
  readonly buffer: string;
  /**
   * Stops measuring the buffer: its totals stay in `bufio_records_total` (a counter never goes
   * down), its gauges disappear, its worker calls are no longer observed. Idempotent.
   */
  detach(): void;
}

type AnyBufIO = BufIO<unknown, unknown>;

interface Live {
  readonly attachment: MetricsAttachment;
  readonly onDrained: () => void;
  readonly stopObserving: () => void;
}

/**
 * Observes worker calls for the histograms. A buffer cannot drop instrumentation it was given
 * (`use()` is for the buffer's life), so a detached buffer keeps this object, switched off, and
 * gets it back if attached again.
 */
class WorkObserver implements Instrumentation<unknown> {
  constructor(
    private readonly batchSize: Histogram<'buffer'>,
    private readonly duration: Histogram<'buffer'>,
  ) {}

  async aroundWork(call: WorkCall<unknown>, run: () => Promise<WorkReport>): Promise<WorkReport> {
    const started = performance.now();
    try {
      return await run();
    } finally {
      const labels = { buffer: call.buffer };
      this.batchSize.observe(labels, call.records.length);
      this.duration.observe(labels, (performance.now() - started) / 1000);
    }
  }
}

const perRegistry = new WeakMap<Registry, BufIOMetrics>();

/**
 * BufIO's Prometheus metrics in one prom-client registry, for every buffer attached to it:
 *
 * - `bufio_records_total{buffer,outcome}` (counter): records pushed, processed, failed (failed
 *   attempts, per record), retried, dropped, dead_lettered, coalesced, refused (pushes rejected:
 *   after `stop()`, by `onFull: 'error'`, invalid, or not stored), unreadable (stored records the
 *   storage could not read back and set aside);
 * - `bufio_buffered_records{buffer}`, `bufio_capacity_records{buffer}`,
 *   `bufio_in_flight_records{buffer}` (gauges): records waiting, `maxBufferedRecords`, records in
 *   running worker calls;
 * - `bufio_batch_size{buffer}` (histogram): records per worker call;
 * - `bufio_work_duration_seconds{buffer}` (histogram): duration of each worker call.
 *
 * Counters and gauges are read from `stats()` when the registry is scraped, so measuring adds
 * nothing to `push`; the histograms observe each worker call. There is one instance per registry
 * (`forRegistry`), which registers the metrics once: any number of buffers and of NestJS
 * applications can share a registry. Buffers with the same name in one process (two applications)
 * are summed under that name.
 *
 * @example
 * const metrics = BufIOMetrics.forRegistry(); // prom-client's default registry
 * metrics.attach(buffer);
 * // GET /metrics: answer `await register.metrics()`, of type `register.contentType`.
 */
export class BufIOMetrics {
  /**
   * The instance of `options.registry` (default: prom-client's `register`), created and registered
   * on first use.
   *
   * @throws InvalidOptionsError for an option of the wrong type, for buckets other than those the
   * registry's BufIO metrics already have, or when the registry holds a metric of the same name
   * that this module did not create (a second copy of `@risemaxi/bufio` in the process).
   */
  static forRegistry(options?: BufIOMetricsOptions): BufIOMetrics {
    const resolved = resolveMetricsOptions(options);
    const registry = options?.registry ?? defaultRegistry;
    let metrics = perRegistry.get(registry);
    if (metrics) {
      metrics.checkBuckets(resolved);
    } else {
      metrics = new BufIOMetrics(registry, resolved);
      perRegistry.set(registry, metrics);
    }
    metrics.ensureRegistered();
    return metrics;
  }

  /** The registry the metrics are in. */
  readonly registry: Registry;
  /** Bucket bounds of `bufio_batch_size`. */
  readonly batchSizeBuckets: readonly number[];
  /** Bucket bounds of `bufio_work_duration_seconds`. */
  readonly durationBuckets: readonly number[];

  private readonly live = new Map<AnyBufIO, Live>();
  /** Totals of detached buffers, by name, so that counters never go down. */
  private readonly retired = new Map<string, Totals>();
  private readonly records: Counter<'buffer' | 'outcome'>;
  private readonly gauges: Gauge<'buffer'>[];
  private readonly batchSize: Histogram<'buffer'>;
  private readonly duration: Histogram<'buffer'>;

  private constructor(registry: Registry, options: ResolvedMetricsOptions) {
    this.registry = registry;
    this.batchSizeBuckets = options.batchSizeBuckets ?? DEFAULT_BATCH_SIZE_BUCKETS;
    this.durationBuckets = options.durationBuckets ?? DEFAULT_DURATION_BUCKETS;
    for (const name of Object.values(METRIC_NAMES)) {
      if (registry.getSingleMetric(name) !== undefined) {
        throw new InvalidOptionsError(
          'registry',
          registry,
          `a registry where "${name}" is not registered yet: it was registered by something ` +
            'other than @risemaxi/bufio/metrics (two copies of @risemaxi/bufio in the process?)',
          'BufIOMetrics',
        );
      }
    }
    // Created unregistered, then registered by ensureRegistered(), which also re-registers them
    // after a `registry.clear()`.
    const records: Counter<'buffer' | 'outcome'> = new Counter<'buffer' | 'outcome'>({
      name: METRIC_NAMES.records,
      help: 'Records by outcome: pushed, processed, failed (attempts), retried, dropped, dead_lettered, coalesced, refused, unreadable',
      labelNames: ['buffer', 'outcome'],
      registers: [],
      collect: (): void => this.collectRecords(records),
    });
    this.records = records;
    this.gauges = [
      this.gauge(
        METRIC_NAMES.buffered,
        'Records waiting in storage, retries included',
        (s) => s.buffered,
      ),
      this.gauge(
        METRIC_NAMES.capacity,
        'maxBufferedRecords: how many records may wait',
        (s) => s.capacity,
      ),
      this.gauge(METRIC_NAMES.inFlight, 'Records in worker calls now running', (s) => s.inFlight),
    ];
    this.batchSize = new Histogram<'buffer'>({
      name: METRIC_NAMES.batchSize,
      help: 'Records per worker call',
      labelNames: ['buffer'],
      buckets: [...this.batchSizeBuckets],
      registers: [],
    });
    this.duration = new Histogram<'buffer'>({
      name: METRIC_NAMES.duration,
      help: 'Duration of worker calls, in seconds',
      labelNames: ['buffer'],
      buckets: [...this.durationBuckets],
      registers: [],
    });
  }

  /**
   * Measures `buffer` from now on, until `detach()` or until it has drained at `stop()`. Attaching
   * a buffer that is attached already returns its attachment.
   */
  attach<T, U>(buffer: BufIO<T, U>): MetricsAttachment {
    const target = buffer as unknown as AnyBufIO;
    const existing = this.live.get(target);
    if (existing) return existing.attachment;
    const stopObserving = target.use(new WorkObserver(this.batchSize, this.duration));
    const attachment: MetricsAttachment = {
      buffer: target.name,
      detach: () => {
        this.detach(target);
      },
    };
    // A stopped buffer changes no more: fold its totals in and let it be garbage-collected.
    const onDrained = (): void => {
      this.detach(target);
    };
    target.on('drained', onDrained);
    this.live.set(target, { attachment, onDrained, stopObserving });
    return attachment;
  }

  /** Stops measuring `buffer` (see `MetricsAttachment.detach`); false if it was not attached. */
  detach<T, U>(buffer: BufIO<T, U>): boolean {
    const target = buffer as unknown as AnyBufIO;
    const entry = this.live.get(target);
    if (!entry) return false;
    this.live.delete(target);
    target.off('drained', entry.onDrained);
    entry.stopObserving();
    addTotals(this.retired, target.name, target.stats());
    return true;
  }

  /** Names of the buffers measured now. */
  buffers(): string[] {
    return [...this.live.keys()].map((b) => b.name);
  }

  /**
   * Detaches every buffer and removes the metrics from the registry; a later `forRegistry` for
   * that registry starts afresh.
   */
  close(): void {
    for (const buffer of [...this.live.keys()]) this.detach(buffer);
    for (const metric of this.metrics()) {
      if (this.registry.getSingleMetric(metric.name) === metric.metric) {
        this.registry.removeSingleMetric(metric.name);
      }
    }
    if (perRegistry.get(this.registry) === this) perRegistry.delete(this.registry);
  }

  private gauge(name: string, help: string, read: (stats: BufIOStats) => number): Gauge<'buffer'> {
    const gauge: Gauge<'buffer'> = new Gauge<'buffer'>({
      name,
      help,
      labelNames: ['buffer'],
      registers: [],
      collect: () => {
        // Reset first: a detached buffer's series must disappear, not stay at its last value.
        gauge.reset();
        const sums = new Map<string, number>();
        for (const buffer of this.live.keys()) {
          sums.set(buffer.name, (sums.get(buffer.name) ?? 0) + read(buffer.stats()));
        }
        for (const [buffer, value] of sums) gauge.set({ buffer }, value);
      },
    });
    return gauge;
  }

  private collectRecords(records: Counter<'buffer' | 'outcome'>): void {
    const totals = new Map<string, Totals>();
    for (const [name, retired] of this.retired) totals.set(name, { ...retired });
    for (const buffer of this.live.keys()) addTotals(totals, buffer.name, buffer.stats());
    records.reset();
    for (const [buffer, values] of totals) {
      for (const key of COUNTED) records.inc({ buffer, outcome: OUTCOMES[key] }, values[key]);
    }
  }

  private metrics(): { name: string; metric: object }[] {
    return [this.records, ...this.gauges, this.batchSize, this.duration].map((metric) => ({
      name: (metric as unknown as { name: string }).name,
      metric,
    }));
  }

  /** Registers whatever is missing from the registry (all of it, the first time). */
  private ensureRegistered(): void {
    for (const { name, metric } of this.metrics()) {
      const present = this.registry.getSingleMetric(name);
      if (present === metric) continue;
      if (present !== undefined) {
        throw new InvalidOptionsError(
          'registry',
          this.registry,
          `a registry where "${name}" is BufIO's own metric, but another metric of that name was registered there`,
          'BufIOMetrics',
        );
      }
      this.registry.registerMetric(metric as Counter);
    }
  }

  private checkBuckets(options: ResolvedMetricsOptions): void {
    const pairs = [
      ['batchSizeBuckets', options.batchSizeBuckets, this.batchSizeBuckets],
      ['durationBuckets', options.durationBuckets, this.durationBuckets],
    ] as const;
    for (const [option, given, used] of pairs) {
      if (given !== undefined && !sameNumbers(given, used)) {
        throw new InvalidOptionsError(
          option,
          given,
          `the buckets the BufIO metrics of this registry already use ([${used.join(', ')}]), or none`,
          'BufIOMetrics',
        );
      }
    }
  }
}

/**
 * Measures one buffer in `options.registry` (default: prom-client's `register`); shorthand for
 * `BufIOMetrics.forRegistry(options).attach(buffer)`.
 */
export function instrumentMetrics<T, U>(
  buffer: BufIO<T, U>,
  options?: BufIOMetricsOptions,
): MetricsAttachment {
  return BufIOMetrics.forRegistry(options).attach(buffer);
}

function addTotals(totals: Map<string, Totals>, name: string, stats: BufIOStats): void {
  let entry = totals.get(name);
  if (!entry) {
    entry = Object.fromEntries(COUNTED.map((k) => [k, 0])) as Totals;
    totals.set(name, entry);
  }
  for (const key of COUNTED) entry[key] += stats[key];
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
