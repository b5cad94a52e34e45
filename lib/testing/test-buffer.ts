import { BufIO } from '../core/bufio.js';
import type { BufIOOptions } from '../core/options.js';
import { manualTimers } from './manual-timers.js';

/**
 * A buffer for tests that processes records only when asked: `flush()`, `drain()` or `stop()`.
 *
 * It is a plain `BufIO`, made with these differences from `new BufIO(options)`:
 * - it is not started, so neither the size nor the interval trigger dispatches a batch on its own
 *   (call `start()` to have them: the size trigger then runs within `push`; the interval never
 *   fires, unless you pass `timers: manualTimers()` and call their `tick()`);
 * - failed records are retried at once (`retry.initialDelay` 0), unless `retry.initialDelay` is
 *   given.
 *
 * Everything else (retries, dead letters, `pushAndWait`, coalescing, priority) behaves as in
 * production, so a test exercises the real semantics, deterministically.
 *
 * @throws InvalidOptionsError as `new BufIO` does.
 *
 * @example
 * const buffer = createTestBuffer<Event>({ worker: (events) => repo.insertMany(events) });
 * await service.track(event); // pushes into the buffer
 * await drain(buffer);
 * expect(await repo.count()).toBe(1);
 */
export function createTestBuffer<T, U = unknown>(options: BufIOOptions<T, U> = {}): BufIO<T, U> {
  // Not an object: BufIO says what is wrong with it.
  if (options === null || typeof options !== 'object') return new BufIO<T, U>(options);
  const retry = options.retry ?? {};
  return new BufIO<T, U>({
    ...options,
    timers: options.timers ?? manualTimers(),
    retry:
      retry !== null && typeof retry === 'object' && retry.initialDelay === undefined
        ? { ...retry, initialDelay: 0 }
        : retry,
  });
}
