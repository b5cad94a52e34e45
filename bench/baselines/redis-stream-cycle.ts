import type { Redis } from 'ioredis';
import type { Batcher, BatchWorker } from '../batcher.js';

/** Appends its arguments to the stream `KEYS[1]`, in order; returns their ids. */
const XADD_LOOP =
  "local ids = {} for i = 1, #ARGV do ids[i] = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i]) end return ids";
const CHUNK = 1000;
const GROUP = 'g';

interface Waiting {
  readonly text: string;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The limit for RedisStorage: what a careful developer writes by hand for one buffer in a Redis
 * stream. Pushes of one tick go in one `EVALSHA` of an `XADD` loop (up to 1000 records), and
 * resolve once Redis holds them; one consumer reads `XREADGROUP COUNT 1000` (blocking on a
 * connection of its own when there is nothing), hands the batch to the worker, then `XACK` and
 * `XDEL` in one round trip. No retries, no lease renewal or recovery, no dead letters, no
 * ordering of retries, no cluster checks: everything RedisStorage does beyond this is what the
 * comparison prices.
 */
export class StreamCycle<T> implements Batcher<T> {
  private queue: Waiting[] = [];
  private scheduled = false;
  private pushed = 0;
  private processed = 0;
  private stopped = false;
  private readonly waiters: (() => void)[] = [];
  private readonly consuming: Promise<void>;

  private constructor(
    private readonly writer: Redis,
    private readonly reader: Redis,
    private readonly key: string,
    private readonly sha: string,
    private readonly worker: BatchWorker<T>,
  ) {
    this.consuming = this.consume();
  }

  /** Loads the script and creates the group; `writer` and `reader` are two connections. */
  static async create<T>(
    writer: Redis,
    reader: Redis,
    key: string,
    worker: BatchWorker<T>,
  ): Promise<StreamCycle<T>> {
    const sha = (await writer.script('LOAD', XADD_LOOP)) as string;
    await writer.xgroup('CREATE', key, GROUP, '0', 'MKSTREAM');
    return new StreamCycle(writer, reader, key, sha, worker);
  }

  push(record: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ text: JSON.stringify(record), resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  drain(): Promise<void> {
    if (this.processed >= this.pushed && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.drain();
    this.stopped = true;
    await this.consuming;
  }

  private flush(): void {
    this.scheduled = false;
    const calls = this.queue;
    this.queue = [];
    const pipeline = this.writer.pipeline();
    for (let at = 0; at < calls.length; at += CHUNK) {
      const texts = calls.slice(at, at + CHUNK).map((call) => call.text);
      pipeline.evalsha(this.sha, 1, this.key, ...texts);
    }
    pipeline.exec().then(
      (results) => {
        calls.forEach((call, i) => {
          const [error] = results?.[Math.floor(i / CHUNK)] ?? [new Error('no reply')];
          if (error) return call.reject(error);
          this.pushed++;
          call.resolve();
        });
      },
      (error: unknown) => calls.forEach((call) => call.reject(error)),
    );
  }

  private async consume(): Promise<void> {
    while (!this.stopped) {
      const reply = (await this.reader.xreadgroup(
        'GROUP',
        GROUP,
        'c',
        'COUNT',
        CHUNK,
        'BLOCK',
        50,
        'STREAMS',
        this.key,
        '>',
      )) as [string, [string, string[]][]][] | null;
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) continue;
      const ids = entries.map(([id]) => id);
      await this.worker(entries.map(([, fields]) => JSON.parse(fields[1]!) as T));
      await this.reader
        .pipeline()
        .xack(this.key, GROUP, ...ids)
        .xdel(this.key, ...ids)
        .exec();
      this.processed += ids.length;
      if (this.processed >= this.pushed && this.queue.length === 0) {
        for (const wake of this.waiters.splice(0)) wake();
      }
    }
  }
}
