import type { BufIO, BufIOStats } from '../core/bufio.js';
import { DrainTimeoutError } from '../core/errors.js';
import { MAX_TIMER_DELAY, OptionChecker } from '../core/options.js';

/** Options of `drain()`. */
export interface DrainOptions {
  /** How long to wait for the buffer to empty, in ms. Default 5000. */
  timeout?: number;
}

const DEFAULT_TIMEOUT = 5000;

/**
 * Flushes `buffer` until nothing waits in it and no worker call runs: records pushed so far,
 * their retries (once due) and pushes blocked on a full buffer have all had their final outcome
 * (processed, dead-lettered or dropped). Unlike `stop()`, the buffer stays usable. Resolves with
 * its `stats()`.
 *
 * Retries are waited for on Node's timers: with the long default retry delays, prefer
 * `createTestBuffer()` (retries at once) or a small `retry.initialDelay`; with Jest's fake timers,
 * advance them instead.
 *
 * @throws NoWorkerError (as a rejection) when the buffer has no worker.
 * @throws DrainTimeoutError (as a rejection) when records still wait after `timeout`.
 * @throws InvalidOptionsError (as a rejection) for a `timeout` that is not a number >= 0.
 */
export async function drain<T, U>(
  buffer: BufIO<T, U>,
  options: DrainOptions = {},
): Promise<BufIOStats> {
  const timeout = new OptionChecker('drain()').number(
    'timeout',
    options.timeout,
    DEFAULT_TIMEOUT,
    0,
    MAX_TIMER_DELAY,
  );
  const deadline = Date.now() + timeout;
  for (;;) {
    // A worker call that never settles must not hold the test past the timeout.
    if (!(await within(buffer.flush(), deadline - Date.now()))) {
      throw new DrainTimeoutError(buffer.name, timeout);
    }
    const stats = buffer.stats();
    const idle = stats.buffered === 0 && stats.inFlight === 0 && stats.blockedPushes === 0;
    if (idle || stats.state === 'stopped') return stats;
    if (Date.now() >= deadline) throw new DrainTimeoutError(buffer.name, timeout);
    // What is left waits for a retry delay: let the clock move on.
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
}

/** Whether `promise` settled within `ms` (its rejection is passed on). */
async function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise.then(() => true as const), expired]);
  } finally {
    clearTimeout(timer);
  }
}
