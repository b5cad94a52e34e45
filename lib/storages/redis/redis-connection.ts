import { type Cluster, Redis, type RedisOptions } from 'ioredis';
import { asError, BufIOError, StorageError, StorageUnavailableError } from '../../core/errors.js';
import { isNoScript, type LuaScript, type RedisClient } from './lua-script.js';

const STATE_EVENTS = ['ready', 'close', 'end'] as const;

/**
 * The storage's view of its ioredis client: whether commands can be sent now, waiting for that
 * when allowed, a bound on every call, and errors turned into `StorageUnavailableError` or
 * `StorageError`.
 *
 * Commands are only sent while the client is `ready`. ioredis would otherwise queue them in its
 * offline queue for as long as it keeps reconnecting, and a `push` would hang with them.
 */
export class RedisConnection {
  readonly client: RedisClient;
  private readonly owned: boolean;
  /** Whether the client has been ready since the storage got it: before that, it is starting. */
  private seenReady: boolean;
  private lastError: Error | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly onStateChange = (): void => {
    if (this.client.status === 'ready') this.seenReady = true;
    for (const wake of [...this.waiters]) wake();
  };
  private readonly onError = (error: Error): void => {
    this.lastError = error;
  };

  constructor(
    redis: RedisClient | string,
    redisOptions: RedisOptions,
    private readonly commandTimeout: number,
  ) {
    if (typeof redis === 'string') {
      this.client = new Redis(redis, redisOptions);
      this.owned = true;
      // Our own client: keep its last error as the cause of unavailability, and keep ioredis from
      // logging every failed reconnection attempt as an unhandled error.
      this.client.on('error', this.onError);
    } else {
      this.client = redis;
      this.owned = false;
    }
    this.seenReady = this.client.status === 'ready';
    for (const event of STATE_EVENTS) this.client.on(event, this.onStateChange);
  }

  /**
   * Resolves when the client is ready. A client still making its first connection (or finishing
   * a handshake) is given until the first outcome, bounded by `commandTimeout`; otherwise, with
   * `wait` false, rejects at once, and with `wait` true, waits until `deadline` (epoch ms).
   *
   * @throws StorageUnavailableError when Redis cannot be reached in time.
   */
  async whenReady(operation: string, wait: boolean, deadline: number): Promise<void> {
    for (;;) {
      const status = this.client.status;
      if (status === 'ready') return;
      if (status === 'end') {
        throw this.unavailable(
          operation,
          'the client is closed (status "end") and will not reconnect',
        );
      }
      const starting =
        status === 'connect' || (!this.seenReady && (status === 'wait' || status === 'connecting'));
      if (!wait && !starting) throw this.unavailable(operation, `connection status "${status}"`);
      if (status === 'wait') this.client.connect().catch(() => undefined);
      const until = wait ? deadline : Math.min(deadline, Date.now() + this.commandTimeout);
      if (!(await this.nextStateChange(until))) {
        throw this.unavailable(
          operation,
          wait
            ? `still unreachable after waiting (connection status "${this.client.status}")`
            : `no connection within ${this.commandTimeout} ms (status "${this.client.status}")`,
        );
      }
    }
  }

  /**
   * Runs one Redis call once the client is ready (see `whenReady`; never waiting for a lost
   * connection), bounded by `commandTimeout`.
   *
   * @throws StorageUnavailableError or StorageError, naming the operation.
   */
  async run<R>(operation: string, call: () => Promise<R>): Promise<R> {
    try {
      await this.whenReady(operation, false, Infinity);
      return await this.bounded(operation, call());
    } catch (error) {
      throw storageFailure(operation, error);
    }
  }

  /** Runs a script (see `run`), loading it if the server does not know it. */
  script(
    operation: string,
    script: LuaScript,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    return this.run(operation, () => script.run(this.client, keys, args));
  }

  /**
   * The reply of a script queued on a pipeline. If the server did not know the script, nothing of
   * it ran, and it runs now on its own (loading it).
   *
   * @throws StorageUnavailableError or StorageError, naming the operation.
   */
  async queued(
    operation: string,
    result: [Error | null, unknown] | undefined,
    script: LuaScript,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    const [error, reply] = result ?? [new Error('no reply in the pipeline'), undefined];
    if (!error) return reply;
    if (isNoScript(error)) return this.script(operation, script, keys, args);
    throw storageFailure(operation, error);
  }

  /** `promise`, or a `StorageUnavailableError` if it does not settle within `commandTimeout`. */
  bounded<R>(operation: string, promise: Promise<R>): Promise<R> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            this.unavailable(
              operation,
              `no reply within commandTimeout (${this.commandTimeout} ms)`,
            ),
          ),
        this.commandTimeout,
      );
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** Stops listening to the client, and quits it if the storage created it. */
  async close(): Promise<void> {
    for (const event of STATE_EVENTS) this.client.removeListener(event, this.onStateChange);
    for (const wake of [...this.waiters]) wake();
    // Disconnecting an ended client again would leave a stray ioredis timer behind.
    if (!this.owned || this.client.status === 'end') return;
    const ended = new Promise<void>((resolve) => this.client.once('end', () => resolve()));
    try {
      if (this.client.status === 'ready') await this.bounded('close', this.client.quit());
      else this.client.disconnect();
      // quit() resolves on Redis's OK; the socket closes a moment later.
      await this.bounded('close', ended);
    } catch {
      if ((this.client.status as string) !== 'end') this.client.disconnect();
    }
  }

  private nextStateChange(until: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve(true);
      };
      const timer = setTimeout(
        () => {
          this.waiters.delete(wake);
          resolve(false);
        },
        Math.max(0, Math.min(until - Date.now(), 2_147_483_647)),
      );
      this.waiters.add(wake);
    });
  }

  /** Where the client connects, for messages: `host:port`, a socket path, or a cluster's nodes. */
  get address(): string {
    return describeAddress(this.client);
  }

  /**
   * A new connection like the client's, without `commandTimeout`, for blocking reads (`watch()`);
   * the caller closes it. Never the user's own client.
   */
  duplicateForBlocking(): RedisClient {
    const client = this.client;
    if (client.isCluster) {
      const cluster = client as Cluster;
      return cluster.duplicate([], {
        redisOptions: { ...cluster.options.redisOptions, commandTimeout: undefined },
      });
    }
    return (client as Redis).duplicate({ commandTimeout: undefined });
  }

  private unavailable(operation: string, reason: string): StorageUnavailableError {
    const where = this.address;
    const cause = this.lastError;
    return new StorageUnavailableError(
      `Redis ${operation} failed: Redis at ${where} is unavailable: ${reason}${cause ? ` (last error: ${cause.message})` : ''}`,
      cause ? { cause } : undefined,
    );
  }
}

function describeAddress(client: RedisClient): string {
  if (client.isCluster) {
    const nodes = (client as unknown as { startupNodes?: unknown[] }).startupNodes ?? [];
    const listed = nodes
      .map((node) =>
        typeof node === 'object' && node !== null
          ? `${(node as { host?: string }).host ?? 'localhost'}:${(node as { port?: number }).port ?? 6379}`
          : String(node),
      )
      .join(', ');
    return `the cluster of ${listed || 'unknown nodes'}`;
  }
  const { host, port, path } = (client as Redis).options;
  return path ? path : `${host ?? 'localhost'}:${port ?? 6379}`;
}

/**
 * Whether an ioredis error means Redis could not be reached or could not serve (as opposed to a
 * command Redis refused): the caller may retry once it is back.
 */
export function isUnavailable(error: unknown): boolean {
  if (error instanceof StorageUnavailableError) return true;
  if (!(error instanceof Error)) return false;
  if (error.name === 'MaxRetriesPerRequestError' || error.name === 'ClusterAllFailedError') {
    return true;
  }
  const code = (error as { code?: unknown }).code;
  if (
    typeof code === 'string' &&
    /^E(CONN|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN)/.test(code)
  ) {
    return true;
  }
  return /^(Connection is closed|Stream isn't writeable|Command timed out|Socket closed|LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|Failed to refresh slots cache)/.test(
    error.message,
  );
}

/** Turns any failure of a Redis call into a BufIO error that names the operation. */
export function storageFailure(operation: string, error: unknown): BufIOError {
  if (error instanceof BufIOError) return error;
  const message = `Redis ${operation} failed: ${asError(error).message}`;
  return isUnavailable(error)
    ? new StorageUnavailableError(message, { cause: error })
    : new StorageError(message, { cause: error });
}
