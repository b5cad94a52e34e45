import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Redis, RedisOptions } from 'ioredis';
import { InvalidOptionsError } from '../../core/errors.js';
import { OptionChecker } from '../../core/options.js';
import { jsonSerializer, type Serializer } from './serializer.js';

/** What `append` does while Redis cannot be reached. */
export type OnUnavailablePolicy = 'reject' | 'block';

/** Options of `RedisStorage`. */
export interface RedisStorageOptions<T> {
  /**
   * An ioredis client you own, which the storage uses and leaves open on `close()`; or a URL
   * (`redis://host:6379/0`, `rediss://...`), from which the storage creates its own client and
   * quits it on `close()`. The storage adds no commands to a client you pass; it listens to its
   * `ready`, `close` and `end` events while open. Consider `maxRetriesPerRequest: 0` on your
   * client too: otherwise a command caught by a lost connection fails only after
   * `commandTimeout`, and ioredis may still send it once reconnected.
   */
  redis: Redis | string;
  /**
   * Settings of the client the storage creates from a URL (not with a client). Default
   * `maxRetriesPerRequest: 0`, so that a command caught by a lost connection fails at once rather
   * than waiting for reconnection: the storage and the engine retry at their own level.
   */
  redisOptions?: RedisOptions;
  /** Names the buffer's keys (see `prefix`). Default `'default'`. */
  name?: string;
  /**
   * Start of every key: `<prefix>:stream`, `:retry`, `:due`, `:lease`, `:data`, `:invalid`.
   * Instances with the same prefix (and group) share one buffer. No spaces or control characters.
   * Default `bufio:<name>`.
   */
  prefix?: string;
  /** The stream's consumer group. Default `'bufio'`. */
  group?: string;
  /** This instance's consumer name in the group; must be unique. Default `<host>-<pid>-<random>`. */
  consumer?: string;
  /**
   * How long a reserved batch stays leased without being renewed, in ms (at least 50). While the
   * process lives it renews its leases every third of this, so a worker call may run longer (as
   * long as it does not block the event loop that long); if the process dies, other instances
   * take its records back (`XAUTOCLAIM`) this long after. Default 30000.
   */
  leaseTimeout?: number;
  /** Largest serialized record, in UTF-8 bytes; larger ones are refused. Default 1 MiB. */
  maxRecordBytes?: number;
  /** How records become text and back. Default: strict JSON (see `jsonSerializer`). */
  serializer?: Serializer<T>;
  /**
   * While Redis cannot be reached, `'reject'` (default) fails `append` at once with
   * `StorageUnavailableError`; `'block'` waits for Redis for up to `unavailableTimeout` ms and
   * rejects only then. Other operations always reject; the engine retries them with backoff.
   */
  onUnavailable?: OnUnavailablePolicy;
  /** With `onUnavailable: 'block'`, the longest an `append` waits for Redis, in ms. Default 10000. */
  unavailableTimeout?: number;
  /**
   * The longest any Redis call may take, in ms, before it fails with `StorageUnavailableError`
   * (a call that timed out may still take effect later: an append then stores its records once,
   * although it rejected). Default 5000.
   */
  commandTimeout?: number;
  /**
   * Receives errors that no call can return: a failed lease renewal, a stored record that could
   * not be deserialized and was set aside under `<prefix>:invalid`. Default: `process.emitWarning`.
   */
  onError?: (error: Error) => void;
}

/** The options with defaults applied and every value checked. */
export interface ResolvedRedisStorageOptions<T> {
  readonly redis: Redis | string;
  readonly redisOptions: RedisOptions;
  readonly name: string;
  readonly prefix: string;
  readonly group: string;
  readonly consumer: string;
  readonly leaseTimeout: number;
  readonly maxRecordBytes: number;
  readonly serializer: Serializer<T>;
  readonly onUnavailable: OnUnavailablePolicy;
  readonly unavailableTimeout: number;
  readonly commandTimeout: number;
  readonly onError: (error: Error) => void;
}

const MAX_TIMER_DELAY = 2_147_483_647;
/** Redis refuses bulk strings over `proto-max-bulk-len`, 512 MB by default. */
const MAX_RECORD_BYTES = 512 * 1024 * 1024;
const KNOWN = new Set([
  'redis',
  'redisOptions',
  'name',
  'prefix',
  'group',
  'consumer',
  'leaseTimeout',
  'maxRecordBytes',
  'serializer',
  'onUnavailable',
  'unavailableTimeout',
  'commandTimeout',
  'onError',
]);
const CLIENT_METHODS = ['pipeline', 'evalsha', 'eval', 'xadd', 'on', 'removeListener'] as const;
// Keys, group and consumer names go into Redis commands as single arguments and into logs:
// printable, without spaces, of a sane length.
const TOKEN = /^[^\s\p{Cc}]{1,256}$/u;

function defaultConsumer(): string {
  const host =
    hostname()
      .replace(/[^\w.-]/g, '_')
      .slice(0, 64) || 'host';
  return `${host}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

function warn(error: Error): void {
  process.emitWarning(error);
}

/**
 * Applies defaults and validates every option, throwing `InvalidOptionsError` that names the
 * option, the value and what is allowed.
 */
export function resolveRedisStorageOptions<T>(
  options: RedisStorageOptions<T>,
): ResolvedRedisStorageOptions<T> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('options', options, 'an object', 'RedisStorage');
  }
  const name = options.name ?? 'default';
  if (typeof name !== 'string' || !TOKEN.test(name)) {
    throw new InvalidOptionsError(
      'name',
      name,
      'a non-empty string of at most 256 characters, without spaces or control characters',
      'RedisStorage',
    );
  }
  const check: OptionChecker = new OptionChecker(`RedisStorage "${name}"`);
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) {
      check.fail(key, (options as unknown as Record<string, unknown>)[key], 'no such option');
    }
  }
  const token = (option: string, value: unknown, fallback: string): string => {
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !TOKEN.test(value)) {
      check.fail(
        option,
        value,
        'a non-empty string of at most 256 characters, without spaces or control characters',
      );
    }
    return value;
  };
  const redis = options.redis;
  if (typeof redis === 'string') {
    if (!/^rediss?:\/\/./.test(redis)) check.fail('redis', redis, 'a redis:// or rediss:// URL');
  } else {
    const missing =
      redis === null || typeof redis !== 'object'
        ? [...CLIENT_METHODS]
        : CLIENT_METHODS.filter(
            (m) => typeof (redis as unknown as Record<string, unknown>)[m] !== 'function',
          );
    if (missing.length > 0) {
      check.fail(
        'redis',
        redis,
        `an ioredis client or a redis:// URL${redis && typeof redis === 'object' ? ` (missing: ${missing.join(', ')})` : ''}`,
      );
    }
  }
  const redisOptions = options.redisOptions;
  if (redisOptions !== undefined) {
    if (typeof redis !== 'string') {
      check.fail(
        'redisOptions',
        redisOptions,
        'nothing when "redis" is a client: configure your client',
      );
    }
    if (redisOptions === null || typeof redisOptions !== 'object') {
      check.fail('redisOptions', redisOptions, 'an object of ioredis options');
    }
  }
  const serializer = options.serializer ?? (jsonSerializer as Serializer<T>);
  if (
    serializer === null ||
    typeof serializer !== 'object' ||
    typeof serializer.serialize !== 'function' ||
    typeof serializer.deserialize !== 'function'
  ) {
    check.fail('serializer', serializer, 'an object with serialize(record) and deserialize(text)');
  }
  return {
    redis,
    redisOptions: { maxRetriesPerRequest: 0, ...redisOptions },
    name,
    prefix: token('prefix', options.prefix, `bufio:${name}`),
    group: token('group', options.group, 'bufio'),
    consumer: token('consumer', options.consumer, defaultConsumer()),
    leaseTimeout: integerIn(
      check,
      'leaseTimeout',
      options.leaseTimeout,
      30_000,
      50,
      MAX_TIMER_DELAY,
    ),
    maxRecordBytes: integerIn(
      check,
      'maxRecordBytes',
      options.maxRecordBytes,
      1024 * 1024,
      1,
      MAX_RECORD_BYTES,
    ),
    serializer,
    onUnavailable: check.oneOf('onUnavailable', options.onUnavailable, 'reject', [
      'reject',
      'block',
    ]),
    unavailableTimeout: check.number(
      'unavailableTimeout',
      options.unavailableTimeout,
      10_000,
      0,
      MAX_TIMER_DELAY,
    ),
    commandTimeout: integerIn(
      check,
      'commandTimeout',
      options.commandTimeout,
      5000,
      1,
      MAX_TIMER_DELAY,
    ),
    onError: check.optionalFunction('onError', options.onError) ?? warn,
  };
}

function integerIn(
  check: OptionChecker,
  option: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    check.fail(option, value, `an integer from ${min} to ${max}`);
  }
  return value;
}
