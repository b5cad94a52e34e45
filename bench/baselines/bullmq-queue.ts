import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import type { Batcher } from '../batcher.js';

/** How the application hands records to BullMQ. */
export type BullMQAdd = 'add' | 'addBulk';

/**
 * The peer users pick instead: a BullMQ queue, one job per record (`removeOnComplete`, as for a
 * queue that must not grow), and a BullMQ worker with `concurrency` jobs at once. With `'add'`
 * each push awaits `queue.add`; with `'addBulk'` the pushes of one tick go in one `addBulk`, as an
 * application would batch them by hand.
 */
export class BullMQQueue<T extends object> implements Batcher<T> {
  private readonly queue: Queue;
  private readonly worker: Worker;
  private pending: { data: T; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private scheduled = false;
  private pushed = 0;
  private processed = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    connection: ConnectionOptions,
    name: string,
    private readonly mode: BullMQAdd,
    concurrency: number,
    prefix: string,
  ) {
    this.queue = new Queue(name, { connection, prefix });
    this.worker = new Worker(
      name,
      async () => {
        this.processed++;
        if (this.processed >= this.pushed && this.pending.length === 0) {
          for (const wake of this.waiters.splice(0)) wake();
        }
      },
      { connection, concurrency, prefix, removeOnComplete: { count: 0 } },
    );
    this.worker.on('error', () => undefined);
    this.queue.on('error', () => undefined);
  }

  push(record: T): Promise<void> {
    if (this.mode === 'add') {
      return this.queue
        .add('record', record, { removeOnComplete: true })
        .then(() => void this.pushed++);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ data: record, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  drain(): Promise<void> {
    if (this.processed >= this.pushed && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.drain();
    await this.worker.close();
    await this.queue.obliterate({ force: true });
    await this.queue.close();
  }

  private flush(): void {
    this.scheduled = false;
    const calls = this.pending;
    this.pending = [];
    this.queue
      .addBulk(
        calls.map(({ data }) => ({ name: 'record', data, opts: { removeOnComplete: true } })),
      )
      .then(
        () => {
          this.pushed += calls.length;
          for (const call of calls) call.resolve();
        },
        (error: unknown) => {
          for (const call of calls) call.reject(error);
        },
      );
  }
}
