import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Redis, RedisOptions } from 'ioredis';
import {
  DURABLE_OPTION_NAMES,
  MAX_TIMER_DELAY,
  SHARED_OPTION_NAMES,
  StorageOptionChecker,
  type DurableStorageOptions,
  type ResolvedDurableOptions,
  type ResolvedSharedOptions,
  type SharedStorageOptions,
} from '../storage-options.js';

/**
 * Options of `RedisStorage`. Pass exactly one of `client` and `url`. The others shared by the
 * durable storages (`serializer`, `maxRecordBytes`, `onError`, `leaseTimeout`, `onUnavailable`,
 * `unavailableTimeout`) mean the same as for each; here, records of a process that died are taken
 * back with `XAUTOCLAIM` after `leaseTimeout`, and a record that cannot be deserialized is set aside
 * under `<prefix>:invalid`.
 */
export interface RedisStorageOptions<T> extends DurableStorageOptions<T>, SharedStorageOptions {
  /**
   * An ioredis client you own: the storage uses it and leaves it open on `close()`. It adds no
   * commands to it, and listens to its `ready`, `close` and `end` events while open. Consider
   * `maxRetriesPerRequest: 0` on it: otherwise a command caught by a lost connection fails only
   * after `commandTimeout`, and ioredis may still send it once reconnected.
   */
  client?: Redis;
  /**
   * Where to connect (`redis://host:6379/0`, `rediss://...`): the storage creates its own client
   * and quits it on `close()`.
   */
  url?: string;
  /**
   * Settings of the client the storage creates from `url` (not with `client`). Default
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
   * The longest any Redis call may take, in ms, before it fails with `StorageUnavailableError`
   * (a call that timed out may still take effect later: an append then stores its records once,
   * although it rejected). Default 5000.
   */
  commandTimeout?: number;
}

/** The options with defaults applied and every value checked. */
export interface ResolvedRedisStorageOptions<T>
  extends ResolvedDurableOptions<T>, ResolvedSharedOptions {
  /** The client given, or the URL to create one from. */
  readonly redis: Redis | string;
  readonly redisOptions: RedisOptions;
  readonly name: string;
  readonly prefix: string;
  readonly group: string;
  readonly consumer: string;
  readonly commandTimeout: number;
}

/** Redis refuses bulk strings over `proto-max-bulk-len`, 512 MB by default. */
const MAX_RECORD_BYTES = 512 * 1024 * 1024;
const KNOWN = new Set<string>([
  'client',
  'url',
  'redisOptions',
  'name',
  'prefix',
  'group',
  'consumer',
  'commandTimeout',
  ...DURABLE_OPTION_NAMES,
  ...SHARED_OPTION_NAMES,
]);
const CLIENT_METHODS = ['pipeline', 'evalsha', 'eval', 'xadd', 'on', 'removeListener'] as const;
// Keys, group and consumer names go into Redis commands as single arguments and into logs:
// printable, without spaces, of a sane length.
const TOKEN = /^[^\s\p{Cc}]{1,256}$/u;
const TOKEN_EXPECTED =
  'a non-empty string of at most 256 characters, without spaces or control characters';

function defaultConsumer(): string {
  const host =
    hostname()
      .replace(/[^\w.-]/g, '_')
      .slice(0, 64) || 'host';
  return `${host}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Applies defaults and validates every option, throwing `InvalidOptionsError` that names the
 * option, the value and what is allowed.
 */
export function resolveRedisStorageOptions<T>(
  options: RedisStorageOptions<T>,
): ResolvedRedisStorageOptions<T> {
  const unnamed: StorageOptionChecker = new StorageOptionChecker('RedisStorage');
  unnamed.known(options, KNOWN);
  const name = options.name ?? 'default';
  if (typeof name !== 'string' || !TOKEN.test(name)) unnamed.fail('name', name, TOKEN_EXPECTED);
  const check: StorageOptionChecker = new StorageOptionChecker(`RedisStorage "${name}"`);
  const token = (option: string, value: unknown, fallback: string): string => {
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !TOKEN.test(value)) check.fail(option, value, TOKEN_EXPECTED);
    return value;
  };
  const { client, url, redisOptions } = options;
  if ((client === undefined) === (url === undefined)) {
    check.fail(
      client === undefined ? 'url' : 'client',
      client ?? url,
      'exactly one of "client" (an ioredis client) and "url" (a redis:// URL)',
    );
  }
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\/./.test(url))) {
    check.fail('url', url, 'a redis:// or rediss:// URL');
  }
  if (client !== undefined) {
    const missing =
      client === null || typeof client !== 'object'
        ? [...CLIENT_METHODS]
        : CLIENT_METHODS.filter(
            (m) => typeof (client as unknown as Record<string, unknown>)[m] !== 'function',
          );
    if (missing.length > 0) {
      check.fail('client', client, `an ioredis client (missing: ${missing.join(', ')})`);
    }
  }
  if (redisOptions !== undefined) {
    if (client !== undefined) {
      check.fail(
        'redisOptions',
        redisOptions,
        'no redisOptions with "client": configure your client',
      );
    }
    if (redisOptions === null || typeof redisOptions !== 'object') {
      check.fail('redisOptions', redisOptions, 'an object of ioredis options');
    }
  }
  return {
    redis: client ?? (url as string),
    redisOptions: { maxRetriesPerRequest: 0, ...redisOptions },
    name,
    prefix: token('prefix', options.prefix, `bufio:${name}`),
    group: token('group', options.group, 'bufio'),
    consumer: token('consumer', options.consumer, defaultConsumer()),
    ...check.durable<T>(options, MAX_RECORD_BYTES, "Redis's proto-max-bulk-len"),
    ...check.shared(options),
    commandTimeout: check.integerIn(
      'commandTimeout',
      options.commandTimeout,
      5000,
      1,
      MAX_TIMER_DELAY,
    ),
  };
}
