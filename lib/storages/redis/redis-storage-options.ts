import type { Cluster, Redis, RedisOptions } from 'ioredis';
import {
  MAX_TIMER_DELAY,
  SERVER_OPTION_NAMES,
  StorageOptionChecker,
  type ResolvedServerStorageOptions,
  type ServerStorageOptions,
} from '../storage-options.js';
import { keysInTwoSlots, layoutKeys, type KeyLayout } from './buffer-keys.js';
import { defaultConsumerName } from './consumer-name.js';
import type { RedisClient } from './lua-script.js';

/**
 * Options of `RedisStorage`. Pass exactly one of `client` and `url`. The others shared by the
 * durable storages (`serializer`, `maxRecordBytes`, `onError`, `leaseTimeout`, `onUnavailable`,
 * `unavailableTimeout`) mean the same as for each; here, records of a process that died are taken
 * back after `leaseTimeout` (at once when it ran on this host), and a record that cannot be
 * deserialized is set aside in the hash `keys.invalid`.
 */
export interface RedisStorageOptions<T> extends ServerStorageOptions<T> {
  /**
   * An ioredis client you own, standalone (`Redis`) or for a Redis Cluster (`Cluster`): the
   * storage uses it and leaves it open on `close()`. It adds no commands to it, and listens to its
   * `ready`, `close` and `end` events while open; `watch()` opens one more connection with
   * `client.duplicate()`, closed with the storage. Consider `maxRetriesPerRequest: 0` on it:
   * otherwise a command caught by a lost connection fails only after `commandTimeout`, and ioredis
   * may still send it once reconnected.
   */
  client?: Redis | Cluster;
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
   * Start of every key (`<prefix>:stream`, `:retry`, `:due`, …; see `keys`). Instances with the
   * same prefix (and group) share one buffer. Every key of a buffer carries one hash tag, so that
   * they all live in one hash slot of a Redis Cluster: a prefix with a hash tag
   * (`app:{events}`) is used as given, one without braces (`app:events`) is wrapped in them
   * (`{app:events}`), and one whose braces form no tag is refused. No spaces or control
   * characters. Default `bufio:{<name>}`.
   */
  prefix?: string;
  /** The stream's consumer group, one per buffer. Default `'bufio'`. */
  group?: string;
  /**
   * This instance's consumer name in the group; must be unique among running instances. Default
   * `<host>-<pid>-<namespace>-<random>`, which lets an instance on the same host take the leases
   * of one that died at once. Give a stable name per replica (a pod name) for a process that
   * restarts to take back its own leases at start, instead of after `leaseTimeout`.
   */
  consumer?: string;
  /**
   * The longest any Redis call may take, in ms, before it fails with `StorageUnavailableError`
   * (a call that timed out may still take effect later: an append then stores its records once,
   * although it rejected). Default 5000.
   */
  commandTimeout?: number;
}

/** The options with defaults applied and every value checked. */
export interface ResolvedRedisStorageOptions<T> extends ResolvedServerStorageOptions<T> {
  /** The client given, or the URL to create one from. */
  readonly redis: RedisClient | string;
  readonly redisOptions: RedisOptions;
  readonly name: string;
  /** The buffer's keys, and where 0.2.0 kept the same buffer. */
  readonly layout: KeyLayout;
  readonly group: string;
  readonly consumer: string;
  /** Whether `consumer` was given: the name may then be an earlier run's. */
  readonly consumerGiven: boolean;
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
  ...SERVER_OPTION_NAMES,
]);
const CLIENT_METHODS = ['pipeline', 'evalsha', 'eval', 'xadd', 'on', 'removeListener'] as const;
// Keys, group and consumer names go into Redis commands as single arguments and into logs:
// printable, without spaces, of a sane length.
const TOKEN = /^[^\s\p{Cc}]{1,256}$/u;
const TOKEN_EXPECTED =
  'a non-empty string of at most 256 characters, without spaces or control characters';

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
  const prefix = options.prefix === undefined ? undefined : token('prefix', options.prefix, '');
  const layout = layoutKeys(prefix, name);
  if (!layout) {
    check.fail(
      'prefix',
      prefix,
      'braces that form a hash tag within the prefix ("app:{events}"), or no braces at all',
    );
  }
  const keyPrefix =
    (client as { options?: { keyPrefix?: unknown } } | undefined)?.options?.keyPrefix ??
    redisOptions?.keyPrefix;
  const split = keysInTwoSlots(layout.keys, typeof keyPrefix === 'string' ? keyPrefix : '');
  if (split) {
    check.fail(
      client === undefined ? 'redisOptions' : 'client',
      keyPrefix,
      `a keyPrefix that keeps the buffer's keys in one hash slot (with it, "${split[0]}" and "${split[1]}" hash to different slots)`,
    );
  }
  return {
    redis: client ?? (url as string),
    redisOptions: { maxRetriesPerRequest: 0, ...redisOptions },
    name,
    layout,
    group: token('group', options.group, 'bufio'),
    consumer: token('consumer', options.consumer, defaultConsumerName()),
    consumerGiven: options.consumer !== undefined,
    ...check.server<T>(options, MAX_RECORD_BYTES, "Redis's proto-max-bulk-len"),
    commandTimeout: check.integerIn(
      'commandTimeout',
      options.commandTimeout,
      5000,
      1,
      MAX_TIMER_DELAY,
    ),
  };
}
