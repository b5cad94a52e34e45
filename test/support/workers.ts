import { MemoryStorage, type Storage, type WorkContext, type WorkResult } from '../../lib/index.js';

/** A worker that records every batch it is given and answers with `behaviour`. */
export function recordingWorker<T, U = unknown>(
  behaviour: (
    records: T[],
    context: WorkContext,
    call: number,
  ) => Promise<WorkResult<U>> | WorkResult<U> = () => undefined,
) {
  const batches: T[][] = [];
  const contexts: WorkContext[] = [];
  const work = async (records: T[], context: WorkContext): Promise<WorkResult<U>> => {
    batches.push([...records]);
    contexts.push(context);
    return behaviour(records, context, batches.length);
  };
  return {
    work,
    batches,
    contexts,
    get processed(): T[] {
      return batches.flat();
    },
  };
}

/** A promise with its resolve and reject exposed, for workers the test finishes by hand. */
export function deferred<V = void>() {
  let resolve!: (value: V) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets pending promise callbacks run (no timers involved). */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** A MemoryStorage that declares itself durable and/or shared, to test how the engine treats those. */
export function memoryStorageAs<T>(flags: { durable?: boolean; shared?: boolean }): Storage<T> & {
  inner: MemoryStorage<T>;
} {
  const inner = new MemoryStorage<T>();
  return {
    inner,
    durable: flags.durable ?? false,
    shared: flags.shared ?? false,
    append: (records) => inner.append(records),
    reserve: (limit, options) => inner.reserve(limit, options),
    ack: (records) => inner.ack(records),
    release: (records, visibleAt) => inner.release(records, visibleAt),
    size: () => inner.size(),
    recover: () => inner.recover(),
    close: () => inner.close(),
  };
}
