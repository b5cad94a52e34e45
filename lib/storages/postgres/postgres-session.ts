import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { storageFailure } from './storage-failure.js';

/** Backoff between attempts to open the session again after it was lost. */
const FIRST_RECONNECT_DELAY = 100;
const MAX_RECONNECT_DELAY = 5_000;
/** How often a new session tries for a presence lock an earlier one still holds. */
const LOCK_RETRY_DELAY = 1_000;

/** What a session needs to know. */
export interface PostgresSessionOptions {
  /**
   * How to connect: the pool's own settings. Absent (a pool that does not expose them): no
   * session, so no presence (this instance's leases only lapse) and no wake-ups.
   */
  readonly connection: pg.ClientConfig | undefined;
  /** The holder key this instance's leases carry: held as a session advisory lock. */
  readonly key: string;
  /** The channel appends notify. */
  readonly channel: string;
  /** This instance's notification payload: its own appends do not wake it. */
  readonly token: string;
  /** The table, for messages. */
  readonly table: string;
  /** Receives the loss of the session (once per outage) and failures to open it again. */
  report(error: Error): void;
}

/**
 * One connection of its own per storage instance, outside the pool, kept open while the instance
 * holds leases or watches:
 *
 * - **Presence.** It holds a session advisory lock on the instance's holder key. PostgreSQL
 *   releases it when the connection ends, which it does when the process dies (a crash, a kill,
 *   a container restart), so any instance can prove the holder of a lease dead with
 *   `pg_try_advisory_xact_lock(holder_key)` and take its leases over at once, instead of after
 *   `leaseTimeout`. If the connection is lost while the process lives, others may take its leases
 *   over meanwhile: records processed twice, never lost.
 * - **Wake-ups.** It `LISTEN`s on the buffer's channel, which appends notify, so an idle engine
 *   waits for records instead of polling for them. After a reconnection, watchers are called once,
 *   since notifications may have been missed.
 */
export class PostgresSession {
  private client: pg.Client | undefined;
  private opening: Promise<void> | undefined;
  private readonly watchers = new Set<() => void>();
  private listening = false;
  private retryDelay = FIRST_RECONNECT_DELAY;
  private retryTimer: NodeJS.Timeout | undefined;
  private failing = false;
  private closed = false;

  constructor(private readonly options: PostgresSessionOptions) {}

  /** Whether leases of this instance are protected by a presence lock. */
  get present(): boolean {
    return this.options.connection !== undefined;
  }

  /**
   * Resolves once the session holds its presence lock (at once without a session); opens it if
   * needed.
   *
   * @throws StorageUnavailableError (as a rejection) when it cannot be opened now.
   */
  ready(): Promise<void> {
    if (this.closed || !this.present || this.client) return Promise.resolve();
    this.opening ??= this.open().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  /** Calls `listener` when another instance may have appended; returns a function that stops. */
  watch(listener: () => void): () => void {
    this.watchers.add(listener);
    if (this.client && !this.listening) void this.listen(this.client);
    else if (!this.client) this.ready().catch(() => this.reconnectLater());
    return () => {
      this.watchers.delete(listener);
    };
  }

  /** Ends the session (and with it the presence lock); no reconnection after this. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.opening?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    if (client) await client.end().catch(() => undefined);
  }

  private async open(): Promise<void> {
    const client = new pg.Client({ ...this.options.connection, keepAlive: true });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, new Error('Connection terminated')));
    client.on('notification', (message) => {
      if (message.channel === this.options.channel && message.payload !== this.options.token) {
        this.wake();
      }
    });
    try {
      await client.connect();
      // Like the engine's timers, an idle session must not keep the process alive.
      (client.connection.stream as Partial<{ unref(): void }>).unref?.();
      const locked = await this.lock(client);
      if (this.closed) {
        await client.end();
        return;
      }
      this.client = client;
      this.retryDelay = FIRST_RECONNECT_DELAY;
      // Only an earlier session of this instance can hold the lock: one the server has not yet
      // noticed gone (a network failure). It still stands for this instance; take it over once
      // the server lets it go, so that the instance never looks gone meanwhile.
      if (!locked) this.lockLater(client);
      if (this.failing) {
        this.failing = false;
        // Appends may have been missed while the session was down.
        this.wake();
      }
      if (this.watchers.size > 0) await this.listen(client);
    } catch (error) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw storageFailure('session connect', this.options.table, error);
    }
  }

  private async lock(client: pg.Client): Promise<boolean> {
    const result = await client.query<{ ok: boolean }>(
      'SELECT pg_try_advisory_lock($1::bigint) AS ok',
      [this.options.key],
    );
    return result.rows[0]?.ok === true;
  }

  private lockLater(client: pg.Client): void {
    const timer = setInterval(() => {
      if (this.client !== client) {
        clearInterval(timer);
        return;
      }
      this.lock(client).then(
        (locked) => {
          if (locked) clearInterval(timer);
        },
        (error: unknown) => {
          clearInterval(timer);
          this.lost(client, error);
        },
      );
    }, LOCK_RETRY_DELAY);
    timer.unref();
  }

  private async listen(client: pg.Client): Promise<void> {
    this.listening = true;
    try {
      // The channel is built from a hex digest: a plain identifier, safe to quote.
      await client.query(`LISTEN "${this.options.channel}"`);
    } catch (error) {
      this.listening = false;
      this.lost(client, error);
    }
  }

  private lost(client: pg.Client, error: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.listening = false;
    client.removeAllListeners('end');
    void client.end().catch(() => undefined);
    if (this.closed) return;
    if (!this.failing) {
      this.failing = true;
      this.report(storageFailure('session', this.options.table, error));
    }
    this.reconnectLater();
  }

  private reconnectLater(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(MAX_RECONNECT_DELAY, this.retryDelay * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.failing = true;
      this.ready().catch(() => this.reconnectLater());
    }, delay);
    this.retryTimer.unref();
  }

  private wake(): void {
    for (const watcher of this.watchers) {
      try {
        watcher();
      } catch (error) {
        this.report(error as Error);
      }
    }
  }

  private report(error: Error): void {
    try {
      this.options.report(error);
    } catch {
      // A throwing error handler must not break the session.
    }
  }
}

/**
 * A random holder key: positive (above the int4 range that `hashtext` locks use) when the
 * instance holds it as a presence lock, negative when it cannot (its leases then only lapse).
 */
export function randomHolderKey(present: boolean): string {
  const key = (randomBytes(8).readBigUInt64BE() >> 2n) | (1n << 61n);
  return String(present ? key : -key);
}
