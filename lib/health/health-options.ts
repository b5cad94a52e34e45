import { InvalidOptionsError } from '../core/errors.js';
import { MAX_TIMER_DELAY, OptionChecker } from '../core/options.js';

/** What makes `BufIOHealthIndicator.isHealthy()` report a buffer down. */
export interface BufIOHealthOptions {
  /** The buffers to check, by name. Default: every buffer of the application. */
  buffers?: readonly string[];
  /**
   * How long the storage may take to answer `size()`, in ms, before it counts as unreachable.
   * Default 1000.
   */
  storageTimeout?: number;
  /**
   * Fill ratio (`buffered / capacity`, capacity being `maxBufferedRecords`) at or above which a
   * buffer counts as full, from 0 (exclusive) to 1. Default 0.9.
   */
  maxFillRatio?: number;
  /**
   * How long a buffer must stay full before it is reported down, in ms: from the first check that
   * saw it full, as long as every later check still does. 0 reports it at the first such check.
   * Default 30000: a burst that the worker absorbs is backpressure working, not an outage.
   */
  fillDuration?: number;
  /**
   * Report a buffer down when records were dead-lettered since the previous check with the same
   * key (since the buffer was created, at the first check). Default true.
   */
  deadLetters?: boolean;
}

/** `BufIOHealthOptions` with defaults applied. */
export interface ResolvedHealthOptions {
  readonly buffers: readonly string[] | undefined;
  readonly storageTimeout: number;
  readonly maxFillRatio: number;
  readonly fillDuration: number;
  readonly deadLetters: boolean;
}

export const HEALTH_DEFAULTS = {
  storageTimeout: 1000,
  maxFillRatio: 0.9,
  fillDuration: 30_000,
  deadLetters: true,
} as const;

const KNOWN = new Set(['buffers', 'storageTimeout', 'maxFillRatio', 'fillDuration', 'deadLetters']);
const CONTEXT = 'BufIOHealthIndicator';

/**
 * Applies defaults and checks every option.
 *
 * @throws InvalidOptionsError naming the option, the value and what is allowed.
 */
export function resolveHealthOptions(options: unknown): ResolvedHealthOptions {
  const check = new OptionChecker(CONTEXT);
  if (options === undefined) options = {};
  const bag = check.known(options, KNOWN);
  const buffers = bag.buffers;
  if (
    buffers !== undefined &&
    !(Array.isArray(buffers) && buffers.every((b) => typeof b === 'string' && b.length > 0))
  ) {
    check.fail('buffers', buffers, 'an array of buffer names');
  }
  const maxFillRatio = check.number(
    'maxFillRatio',
    bag.maxFillRatio,
    HEALTH_DEFAULTS.maxFillRatio,
    0,
    1,
  );
  if (maxFillRatio === 0) {
    throw new InvalidOptionsError(
      'maxFillRatio',
      maxFillRatio,
      'a number above 0 and at most 1',
      CONTEXT,
    );
  }
  return {
    buffers: buffers === undefined ? undefined : [...(buffers as string[])],
    storageTimeout: check.number(
      'storageTimeout',
      bag.storageTimeout,
      HEALTH_DEFAULTS.storageTimeout,
      1,
      MAX_TIMER_DELAY,
    ),
    maxFillRatio,
    fillDuration: check.number(
      'fillDuration',
      bag.fillDuration,
      HEALTH_DEFAULTS.fillDuration,
      0,
      MAX_TIMER_DELAY,
    ),
    deadLetters: check.boolean('deadLetters', bag.deadLetters, HEALTH_DEFAULTS.deadLetters),
  };
}
