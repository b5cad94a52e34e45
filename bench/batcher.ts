import { BufIO, type BufIOOptions } from '../lib/index.js';

/** Processes a batch; every contender of a suite gets the same one. */
export type BatchWorker<T> = (batch: T[]) => void | Promise<void>;

/**
 * The face every contender shows a suite: BufIO and each baseline are driven through it, by the
 * same producer loops.
 */
export interface Batcher<T> {
  /** Accepts a record; a promise when the contender's push is asynchronous (or blocked). */
  push(record: T): void | Promise<void>;
  /** Resolves once every record pushed so far has been through the worker. */
  drain(): Promise<void>;
  /** Drains and releases timers and connections. */
  close(): Promise<void>;
}

/** BufIO behind the common face, started, with the given worker and options. */
export function bufioBatcher<T>(
  worker: BatchWorker<T>,
  options: Omit<BufIOOptions<T>, 'worker'>,
): Batcher<T> & { readonly bufio: BufIO<T> } {
  const bufio = new BufIO<T>({ ...options, worker });
  bufio.on('error', (error) => {
    process.stderr.write(`bench: BufIO reported ${String(error)}\n`);
  });
  bufio.start();
  return {
    bufio,
    push: (record) => bufio.push(record),
    drain: () => bufio.flush(),
    close: async () => {
      await bufio.stop();
    },
  };
}
