import type { RedisClient } from './lua-script.js';

/** What a `StreamWatch` watches, and how it gets a connection of its own. */
export interface StreamWatchOptions {
  /** A new connection for the blocking reads (they would hold up every other command). */
  connect(): RedisClient;
  /** The stream key, and the consumer group whose unread entries wake the watchers. */
  readonly stream: string;
  readonly group: string;
  /** How long one blocking read waits, in ms: an idle watch costs two round trips per period. */
  readonly blockMs: number;
  /** After a wake-up, how long to wait for the engine's reserve before watching again, in ms. */
  readonly settleMs: number;
  /** Receives the first failure of each run of failures (a lost connection). */
  report(error: unknown): void;
}

/**
 * Wakes an idle engine when the stream holds entries its consumer group has not read (appended by
 * any instance), and when a retry it knows of falls due; so that the engine need not poll Redis
 * every `flushInterval`.
 *
 * One loop per storage, on a connection of its own: read the group's last-delivered-id, then
 * `XREAD BLOCK` from it, which answers at once when unread entries exist and otherwise when one is
 * appended, or after `blockMs`. After a wake-up the loop waits for the engine's next reserve (or
 * `settleMs`) before it looks again, so that a busy stream costs one look per reserve, not one per
 * append.
 */
export class StreamWatch {
  private readonly listeners = new Set<() => void>();
  private connection: RedisClient | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private settle: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAt = Infinity;

  constructor(private readonly options: StreamWatchOptions) {}

  /** Calls `listener` on every wake-up until the returned function is called. */
  add(listener: () => void): () => void {
    const entry = (): void => listener();
    this.listeners.add(entry);
    if (!this.running && !this.stopped) this.running = this.loop();
    this.arm();
    return () => {
      this.listeners.delete(entry);
      if (this.listeners.size === 0) void this.pause();
    };
  }

  /** The storage answered a reserve: the engine acted on the last wake-up. */
  reserved(): void {
    this.settle?.();
  }

  /** The earliest time a retry becomes visible (epoch ms; Infinity for none): wake up then. */
  retryDueAt(at: number): void {
    if (at === this.retryAt && (this.retryTimer || !Number.isFinite(at))) return;
    this.retryAt = at;
    this.arm();
  }

  private arm(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (!Number.isFinite(this.retryAt) || this.listeners.size === 0) return;
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = undefined;
        this.retryAt = Infinity;
        this.wake();
      },
      Math.min(Math.max(0, this.retryAt - Date.now()), 2_147_483_647),
    );
    this.retryTimer.unref();
  }

  /** Stops for good, closing the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.listeners.clear();
    await this.pause();
  }

  private async pause(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const connection = this.connection;
    this.connection = undefined;
    // Ends a blocked read at once; the loop sees no connection and returns.
    connection?.disconnect();
    this.settle?.();
    const running = this.running;
    this.running = undefined;
    await running;
  }

  private wake(): void {
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch {
        // A listener's failure is the engine's to report; the watch goes on.
      }
    }
  }

  private async loop(): Promise<void> {
    let failing = false;
    let backoff = 100;
    while (this.listeners.size > 0 && !this.stopped) {
      const connection = (this.connection ??= this.openConnection());
      try {
        const from = await this.lastDelivered(connection);
        const reply = await connection.xread(
          'COUNT',
          1,
          'BLOCK',
          this.options.blockMs,
          'STREAMS',
          this.options.stream,
          from,
        );
        failing = false;
        backoff = 100;
        if (this.connection !== connection || reply === null) continue;
        this.wake();
        await this.settled();
      } catch (error) {
        if (this.connection !== connection || this.stopped) return;
        if (!failing) this.options.report(error);
        failing = true;
        await new Promise((resolve) => setTimeout(resolve, backoff).unref());
        backoff = Math.min(backoff * 2, this.options.blockMs);
      }
    }
  }

  private openConnection(): RedisClient {
    const connection = this.options.connect();
    // Its failures surface in the loop; an 'error' event without a listener would crash the host.
    connection.on('error', () => undefined);
    return connection;
  }

  /** The group's last-delivered-id: entries after it are unread. '0-0' before the group exists. */
  private async lastDelivered(connection: RedisClient): Promise<string> {
    let groups: unknown;
    try {
      groups = await connection.xinfo('GROUPS', this.options.stream);
    } catch (error) {
      if (error instanceof Error && /no such key/i.test(error.message)) return '0-0';
      throw error;
    }
    for (const info of Array.isArray(groups) ? groups : []) {
      const fields = fieldsOf(info);
      if (fields.get('name') === this.options.group) {
        return String(fields.get('last-delivered-id') ?? '0-0');
      }
    }
    return '0-0';
  }

  private settled(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.options.settleMs);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.settle = () => {
        this.settle = undefined;
        done();
      };
    });
  }
}

/** Fields of a reply that is a flat `[name, value, …]` array, or a map (RESP3 reply mapping). */
export function fieldsOf(reply: unknown): Map<string, unknown> {
  const fields = new Map<string, unknown>();
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) fields.set(String(reply[i]), reply[i + 1]);
  } else if (reply instanceof Map) {
    for (const [key, value] of reply) fields.set(String(key), value);
  } else if (reply !== null && typeof reply === 'object') {
    for (const [key, value] of Object.entries(reply)) fields.set(key, value);
  }
  return fields;
}
