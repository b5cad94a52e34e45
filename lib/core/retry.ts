import type { RetryOptions } from './options.js';

/**
 * Delay before retrying a record that has failed `attempts` times, with exponential backoff and
 * full jitter: uniform in [0, min(maxDelay, initialDelay × factor^(attempts − 1))]. Jitter spreads
 * the retries of many failed batches so they do not hit a recovering service at the same moment.
 */
export function retryDelay(
  attempts: number,
  policy: Readonly<Required<RetryOptions>>,
  random: () => number = Math.random,
): number {
  const bound = Math.min(policy.maxDelay, policy.initialDelay * policy.factor ** (attempts - 1));
  return Math.floor(random() * bound);
}
