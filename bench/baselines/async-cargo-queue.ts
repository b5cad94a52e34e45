import { cargoQueue } from 'async';
import type { Batcher, BatchWorker } from '../batcher.js';

const noop = (): void => {};

/**
 * `async.cargoQueue(worker, 1, batchSize)`: one worker call at a time, up to `batchSize` tasks
 * each. It has no time trigger: it starts a batch on the next `setImmediate` after a push. `push`
 * passes a shared no-op callback, the cheapest way to call it (without one it allocates a promise
 * per record, which resolves only once the record is processed, not when it is accepted).
 */
export function cargoBatcher<T>(
  worker: BatchWorker<T>,
  options: { batchSize: number },
): Batcher<T> {
  const queue = cargoQueue<T, Error>(
    (tasks: T[], callback: (error?: Error | null) => void) => {
      const done = worker(tasks);
      if (done instanceof Promise) done.then(() => callback(), callback);
      else callback();
    },
    1,
    options.batchSize,
  );
  const drain = async (): Promise<void> => {
    if (!queue.idle()) await queue.drain();
  };
  return {
    push: (record) => {
      queue.push(record, noop);
    },
    drain,
    close: drain,
  };
}
