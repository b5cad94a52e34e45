import { bufferTime, concatMap, from, Subject } from 'rxjs';
import type { Batcher, BatchWorker } from '../batcher.js';

/**
 * rxjs: a `Subject` piped through `bufferTime(flushInterval, null, batchSize)`, which emits a batch
 * when it is full or when its timer fires. A synchronous worker is called in `subscribe`; an
 * asynchronous one through `concatMap`, one call at a time. `push` is `subject.next(record)`.
 * rxjs has no flush: `drain` waits until the worker has seen every record pushed (a partial
 * batch goes out when its timer fires); `close` completes the subject, which emits the rest.
 */
export function rxjsBatcher<T>(
  worker: BatchWorker<T>,
  options: { batchSize: number; flushInterval: number; asyncWorker?: boolean },
): Batcher<T> {
  const subject = new Subject<T>();
  let pushed = 0;
  let processed = 0;
  let waiters: (() => void)[] = [];
  const settle = (): void => {
    if (processed < pushed || waiters.length === 0) return;
    const ready = waiters;
    waiters = [];
    for (const resolve of ready) resolve();
  };
  const batches = subject.pipe(bufferTime<T>(options.flushInterval, null, options.batchSize));
  const subscription = options.asyncWorker
    ? batches
        .pipe(
          concatMap((batch) =>
            from(
              batch.length === 0
                ? Promise.resolve()
                : Promise.resolve(worker(batch)).then(() => {
                    processed += batch.length;
                  }),
            ),
          ),
        )
        .subscribe(settle)
    : batches.subscribe((batch) => {
        if (batch.length === 0) return;
        void worker(batch);
        processed += batch.length;
        settle();
      });
  return {
    push: (record) => {
      pushed++;
      subject.next(record);
    },
    drain: () =>
      processed >= pushed
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push(resolve)),
    close: async () => {
      subject.complete();
      if (processed < pushed) await new Promise<void>((resolve) => waiters.push(resolve));
      subscription.unsubscribe();
    },
  };
}
