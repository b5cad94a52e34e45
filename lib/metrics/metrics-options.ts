import type { Registry } from 'prom-client';
import { InvalidOptionsError } from '../core/errors.js';
import { OptionChecker } from '../core/options.js';

/** Options of `BufIOMetrics.forRegistry()` and `instrumentMetrics()`. */
export interface BufIOMetricsOptions {
  /** Where the metrics are registered. Default: prom-client's default registry (`register`). */
  registry?: Registry;
  /**
   * Upper bounds of the `bufio_batch_size` buckets, in records, increasing. Default
   * `[1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]`. The first caller for a registry
   * sets them; a later caller that gives other buckets is refused.
   */
  batchSizeBuckets?: readonly number[];
  /**
   * Upper bounds of the `bufio_work_duration_seconds` buckets, in seconds, increasing. Default
   * `[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]`. Same rule as
   * `batchSizeBuckets`.
   */
  durationBuckets?: readonly number[];
}

/** `BufIOMetricsOptions` with defaults applied (the registry is resolved by the caller). */
export interface ResolvedMetricsOptions {
  readonly batchSizeBuckets: readonly number[] | undefined;
  readonly durationBuckets: readonly number[] | undefined;
}

export const DEFAULT_BATCH_SIZE_BUCKETS: readonly number[] = [
  1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
];
export const DEFAULT_DURATION_BUCKETS: readonly number[] = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

const KNOWN = new Set(['registry', 'batchSizeBuckets', 'durationBuckets']);
const CONTEXT = 'BufIOMetrics';

/**
 * Checks the options, naming the option and the value at fault. Buckets left out stay
 * `undefined`: they mean "whatever the registry's metrics already use, or the default".
 *
 * @throws InvalidOptionsError
 */
export function resolveMetricsOptions(options: unknown): ResolvedMetricsOptions {
  if (options === undefined) return { batchSizeBuckets: undefined, durationBuckets: undefined };
  const check = new OptionChecker(CONTEXT);
  const bag = check.known(options, KNOWN);
  const registry = bag.registry;
  if (
    registry !== undefined &&
    (registry === null ||
      typeof registry !== 'object' ||
      typeof (registry as { registerMetric?: unknown }).registerMetric !== 'function' ||
      typeof (registry as { getSingleMetric?: unknown }).getSingleMetric !== 'function')
  ) {
    check.fail('registry', registry, "a prom-client Registry (new Registry(), or 'register')");
  }
  return {
    batchSizeBuckets: buckets('batchSizeBuckets', bag.batchSizeBuckets),
    durationBuckets: buckets('durationBuckets', bag.durationBuckets),
  };
}

function buckets(option: string, value: unknown): readonly number[] | undefined {
  if (value === undefined) return undefined;
  const ok =
    Array.isArray(value) &&
    value.length > 0 &&
    value.every(
      (b, i) =>
        typeof b === 'number' && Number.isFinite(b) && b > 0 && (i === 0 || b > value[i - 1]!),
    );
  if (!ok) {
    throw new InvalidOptionsError(
      option,
      value,
      'a non-empty array of finite, positive, strictly increasing numbers',
      CONTEXT,
    );
  }
  return [...(value as number[])];
}
