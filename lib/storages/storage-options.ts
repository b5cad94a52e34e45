import { MAX_TIMER_DELAY, OptionChecker } from '../core/options.js';
import { jsonSerializer, type Serializer } from './serializer.js';

/** What `append` does while a shared storage's server cannot be reached. */
export type OnUnavailablePolicy = 'reject' | 'block';

/**
 * Receives the errors of a storage that no call can return: a failed lease renewal, a stored
 * record set aside because it could not be deserialized, a lost idle connection, a damaged journal
 * cut at open. Default: `process.emitWarning(error)`, as the engine reports an `error` event that
 * has no listener.
 */
export type StorageErrorHandler = (error: Error) => void;

/** Options every durable storage has, with the same meaning, defaults and checks. */
export interface DurableStorageOptions<T> {
  /**
   * How records become text and back; the storage keeps the text as it is, in UTF-8. Default:
   * strict JSON (see `jsonSerializer`).
   */
  serializer?: Serializer<T>;
  /**
   * Largest serialized record, in UTF-8 bytes; a larger one rejects its `append` with
   * `RecordTooLargeError`, and nothing of that call is stored. Default 1 MiB.
   */
  maxRecordBytes?: number;
  /**
   * Receives errors that no call can return: a failed lease renewal (Redis, PostgreSQL), a stored
   * record that could not be deserialized and was set aside (FileStorage always; Redis and
   * PostgreSQL when `reserve` was given no `onUnreadable`, as the engine always gives one), a lost
   * idle connection (PostgreSQL), damaged journal data cut at open (FileStorage, without
   * `onRecovery`), an `onUnreadable` that threw. A handler that throws is ignored. Default:
   * `process.emitWarning`.
   */
  onError?: StorageErrorHandler;
}

/** Options of the storages that processes share through a server (Redis, PostgreSQL). */
export interface SharedStorageOptions {
  /**
   * How long a reserved batch stays leased without being renewed, in ms (an integer, at least
   * 50). While the process lives it renews its leases every third of this, so a worker call may
   * run longer (as long as it does not block the event loop that long); if the process dies,
   * other processes take its records back this long after. Default 30000.
   */
  leaseTimeout?: number;
  /**
   * While the server cannot be reached, `'reject'` (default) fails `append` at once with
   * `StorageUnavailableError`; `'block'` keeps trying for up to `unavailableTimeout` ms and rejects
   * only then. Other operations always reject; the engine retries them with backoff.
   */
  onUnavailable?: OnUnavailablePolicy;
  /**
   * With `onUnavailable: 'block'` (and only then), the longest an `append` waits for the server,
   * in ms. Default 10000.
   */
  unavailableTimeout?: number;
}

/** `DurableStorageOptions`, resolved. */
export interface ResolvedDurableOptions<T> {
  readonly serializer: Serializer<T>;
  readonly maxRecordBytes: number;
  readonly onError: StorageErrorHandler;
}

/** `SharedStorageOptions`, resolved. */
export interface ResolvedSharedOptions {
  readonly leaseTimeout: number;
  readonly onUnavailable: OnUnavailablePolicy;
  readonly unavailableTimeout: number;
}

/**
 * What a storage shared through a server (Redis, PostgreSQL) has in common with the others: the
 * durable options and the shared ones.
 */
export interface ServerStorageOptions<T> extends DurableStorageOptions<T>, SharedStorageOptions {}

/** `ServerStorageOptions`, resolved. */
export interface ResolvedServerStorageOptions<T>
  extends ResolvedDurableOptions<T>, ResolvedSharedOptions {}

/** The names of `DurableStorageOptions`, of `SharedStorageOptions`, and of both. */
export const DURABLE_OPTION_NAMES = ['serializer', 'maxRecordBytes', 'onError'] as const;
export const SHARED_OPTION_NAMES = ['leaseTimeout', 'onUnavailable', 'unavailableTimeout'] as const;
export const SERVER_OPTION_NAMES = [...DURABLE_OPTION_NAMES, ...SHARED_OPTION_NAMES] as const;

/** The defaults every durable storage shares. */
export const STORAGE_DEFAULTS = {
  maxRecordBytes: 1024 * 1024,
  leaseTimeout: 30_000,
  onUnavailable: 'reject',
  unavailableTimeout: 10_000,
} as const;

/** Re-exported for the storages' options; defined once, in lib/core. */
export { MAX_TIMER_DELAY };

/** Below this, a lease would have to be renewed faster than a round trip can be relied on. */
const MIN_LEASE_TIMEOUT = 50;

/** Reports as a process warning, with the error's own name, code and stack. */
export function warnOnError(error: Error): void {
  process.emitWarning(error);
}

/**
 * Validates the options the durable storages have in common, with the same names, defaults,
 * ranges and messages for each; every failure is an `InvalidOptionsError` naming the storage, the
 * option, the value and what is allowed.
 */
export class StorageOptionChecker extends OptionChecker {
  /** An integer in `[min, max]`, or `fallback` when undefined. */
  integerIn(option: string, value: unknown, fallback: number, min: number, max: number): number {
    const checked = this.integer(option, value, fallback, min);
    if (checked > max) this.fail(option, value, `an integer from ${min} to ${max}`);
    return checked;
  }

  /** A `Serializer`, or `jsonSerializer` when undefined. */
  serializer<T>(value: unknown): Serializer<T> {
    if (value === undefined) return jsonSerializer as Serializer<T>;
    const serializer = value as Serializer<T> | null;
    if (
      serializer === null ||
      typeof serializer !== 'object' ||
      typeof serializer.serialize !== 'function' ||
      typeof serializer.deserialize !== 'function'
    ) {
      this.fail('serializer', value, 'an object with serialize(record) and deserialize(text)');
    }
    return serializer;
  }

  /**
   * Largest serialized record, in UTF-8 bytes; default 1 MiB. `max` is the storage's own limit,
   * which `why` explains.
   */
  maxRecordBytes(value: unknown, max: number, why: string): number {
    const checked = this.integer('maxRecordBytes', value, STORAGE_DEFAULTS.maxRecordBytes, 1);
    if (checked > max) this.fail('maxRecordBytes', value, `an integer from 1 to ${max} (${why})`);
    return checked;
  }

  /** How long a reserved batch stays leased without renewal, in ms; default 30000. */
  leaseTimeout(value: unknown): number {
    return this.integerIn(
      'leaseTimeout',
      value,
      STORAGE_DEFAULTS.leaseTimeout,
      MIN_LEASE_TIMEOUT,
      MAX_TIMER_DELAY,
    );
  }

  /**
   * `onUnavailable` (default `'reject'`) and `unavailableTimeout` (default 10000 ms), which only
   * means something with `'block'` and is refused otherwise, so that a setting that would do
   * nothing is not mistaken for one that does.
   */
  unavailable(
    onUnavailable: unknown,
    unavailableTimeout: unknown,
  ): Pick<ResolvedSharedOptions, 'onUnavailable' | 'unavailableTimeout'> {
    const policy = this.oneOf<OnUnavailablePolicy>(
      'onUnavailable',
      onUnavailable,
      STORAGE_DEFAULTS.onUnavailable,
      ['reject', 'block'],
    );
    if (unavailableTimeout !== undefined && policy !== 'block') {
      this.fail(
        'unavailableTimeout',
        unavailableTimeout,
        "no unavailableTimeout unless onUnavailable is 'block'",
      );
    }
    return {
      onUnavailable: policy,
      unavailableTimeout: this.integerIn(
        'unavailableTimeout',
        unavailableTimeout,
        STORAGE_DEFAULTS.unavailableTimeout,
        0,
        MAX_TIMER_DELAY,
      ),
    };
  }

  /**
   * The options every durable storage has. `maxRecordBytes` is bounded by the storage's own
   * limit, `max`, which `why` explains.
   */
  durable<T>(
    options: DurableStorageOptions<T>,
    max: number,
    why: string,
  ): ResolvedDurableOptions<T> {
    return {
      serializer: this.serializer<T>(options.serializer),
      maxRecordBytes: this.maxRecordBytes(options.maxRecordBytes, max, why),
      onError: this.onError(options.onError),
    };
  }

  /** The options of a storage shared through a server. */
  shared(options: SharedStorageOptions): ResolvedSharedOptions {
    return {
      leaseTimeout: this.leaseTimeout(options.leaseTimeout),
      ...this.unavailable(options.onUnavailable, options.unavailableTimeout),
    };
  }

  /** `durable` and `shared`: the common options of a storage shared through a server. */
  server<T>(
    options: ServerStorageOptions<T>,
    max: number,
    why: string,
  ): ResolvedServerStorageOptions<T> {
    return { ...this.durable<T>(options, max, why), ...this.shared(options) };
  }

  /** An error handler, or `warnOnError` when undefined. */
  onError(value: unknown): StorageErrorHandler {
    return (
      this.optionalFunction('onError', value as StorageErrorHandler | undefined) ?? warnOnError
    );
  }
}
