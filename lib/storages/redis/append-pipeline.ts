import { isUnavailable, type RedisConnection, storageFailure } from './redis-connection.js';
import { APPEND_MANY } from './scripts.js';

interface PendingAppend {
  readonly texts: readonly string[];
  resolve(ids: string[]): void;
  reject(error: Error): void;
}

/** How long to wait before sending again when Redis is connected but answered "busy/loading". */
const RETRY_PAUSE = 100;

/**
 * Gathers the appends of one tick of the event loop into one pipeline, one round trip: 100
 * producers pushing at once cost one wait for Redis, not 100. A one-record append is one `XADD`;
 * a longer one is a Lua script of `XADD`s, so that its records are stored all or none.
 */
export class AppendPipeline {
  private burst: PendingAppend[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private readonly sending = new Set<Promise<void>>();

  constructor(
    private readonly connection: RedisConnection,
    private readonly stream: string,
    /** Whether to wait for Redis when it is unreachable, and how long (ms). */
    private readonly block: { readonly wait: boolean; readonly timeout: number },
  ) {}

  /** Queues serialized records for the next pipeline; resolves with their stream ids. */
  add(texts: readonly string[]): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.burst.push({ texts, resolve, reject });
      this.scheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Sends what is queued now and resolves when every append sent so far has settled. */
  async settled(): Promise<void> {
    if (this.scheduled) {
      clearImmediate(this.scheduled);
      this.flush();
    }
    await Promise.allSettled([...this.sending]);
  }

  private flush(): void {
    this.scheduled = undefined;
    const burst = this.burst;
    this.burst = [];
    if (burst.length === 0) return;
    const sending = this.send(burst, Date.now() + this.block.timeout).finally(() =>
      this.sending.delete(sending),
    );
    this.sending.add(sending);
  }

  private async send(burst: PendingAppend[], deadline: number): Promise<void> {
    let pending = burst;
    for (;;) {
      try {
        await this.connection.whenReady('append', this.block.wait, deadline);
      } catch (error) {
        for (const append of pending) append.reject(storageFailure('append', error));
        return;
      }
      const pipeline = this.connection.client.pipeline();
      for (const { texts } of pending) {
        if (texts.length === 1) pipeline.xadd(this.stream, '*', 'd', texts[0] as string);
        else pipeline.eval(APPEND_MANY, 1, this.stream, ...texts);
      }
      let results: [error: Error | null, result: unknown][] | null = null;
      let failure: unknown = new Error('the pipeline returned no results');
      try {
        results = await this.connection.bounded('append', pipeline.exec());
      } catch (error) {
        failure = error;
      }
      const again: PendingAppend[] = [];
      pending.forEach((append, i) => {
        const [error, reply] = results?.[i] ?? [failure, undefined];
        if (!error) {
          append.resolve(append.texts.length === 1 ? [reply as string] : (reply as string[]));
        } else if (this.block.wait && isUnavailable(error) && Date.now() < deadline) {
          // May have been stored before the connection broke: a retry then stores it twice,
          // which at-least-once delivery allows; losing it would not be.
          again.push(append);
        } else {
          append.reject(storageFailure('append', error));
        }
      });
      if (again.length === 0) return;
      pending = again;
      if (this.connection.client.status === 'ready') {
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE));
      }
    }
  }
}
