/**
 * The Redis keys of one buffer: their names, the one hash slot they share, and the names 0.2.0
 * used. See `scripts.ts` for what each key holds.
 */

/** The keys of a buffer, in the order every script receives them (`KEYS[1]` … `KEYS[9]`). */
export const KEY_NAMES = [
  'stream',
  'retry',
  'due',
  'lease',
  'data',
  'invalid',
  'lapsed',
  'holders',
  'meta',
] as const;

/** The keys 0.2.0 kept records in (its `invalid` hash holds no record of the buffer). */
export const LEGACY_KEY_NAMES = ['stream', 'retry', 'due', 'lease', 'data'] as const;

export type KeyName = (typeof KEY_NAMES)[number];

/** The Redis keys of one buffer, as the storage names them (before any client `keyPrefix`). */
export type RedisStorageKeys = { readonly [K in KeyName]: string };

/** The keys of a buffer written by BufIO 0.2.0, which did not put them in one hash slot. */
export type LegacyKeys = { readonly [K in (typeof LEGACY_KEY_NAMES)[number]]: string };

/**
 * The part of a key that Redis Cluster hashes to pick its slot: the text between the first `{` and
 * the first `}` after it when that is not empty (a hash tag), otherwise the whole key.
 */
export function hashedPart(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  if (close <= open + 1) return key;
  return key.slice(open + 1, close);
}

/** Where a buffer lives, and where 0.2.0 kept the same buffer. */
export interface KeyLayout {
  readonly keys: RedisStorageKeys;
  /** The names 0.2.0 gave the same buffer, when they differ from `keys`. */
  readonly legacy?: LegacyKeys;
}

/**
 * The keys of a buffer. Every key is `<prefix>:<part>` and carries one hash tag, so that they all
 * live in one hash slot (Redis Cluster runs a script only over keys of one slot):
 *
 * - no `prefix`: `bufio:{<name>}`;
 * - a prefix with a hash tag (`app:{events}`): as given;
 * - a prefix without braces (`app:events`): wrapped, `{app:events}`.
 *
 * 0.2.0 used `<prefix or bufio:<name>>:<part>` as given: where that differs, `legacy` names those
 * keys, so that the storage can move what 0.2.0 left there.
 *
 * @returns undefined `keys` when `prefix` has braces that do not form a hash tag within it.
 */
export function layoutKeys(prefix: string | undefined, name: string): KeyLayout | undefined {
  const given = prefix ?? `bufio:${name}`;
  let tagged: string;
  if (prefix === undefined) tagged = `bufio:{${name}}`;
  else if (!/[{}]/.test(prefix)) tagged = `{${prefix}}`;
  else if (hashedPart(`${prefix}:`) !== `${prefix}:`) tagged = prefix;
  else return undefined;
  const keys = Object.freeze(
    Object.fromEntries(KEY_NAMES.map((part) => [part, `${tagged}:${part}`])),
  ) as RedisStorageKeys;
  if (tagged === given) return { keys };
  const legacy = Object.freeze(
    Object.fromEntries(LEGACY_KEY_NAMES.map((part) => [part, `${given}:${part}`])),
  ) as LegacyKeys;
  return { keys, legacy };
}

/**
 * Two keys of the buffer that, with the client's `keyPrefix` in front as ioredis sends them, hash
 * to different slots; undefined when all hash the same part, so live in one slot.
 */
export function keysInTwoSlots(
  keys: RedisStorageKeys,
  keyPrefix: string,
): [string, string] | undefined {
  const [first, ...rest] = Object.values(keys).map((key) => `${keyPrefix}${key}`);
  const other = rest.find((key) => hashedPart(key) !== hashedPart(first as string));
  return other === undefined ? undefined : [first as string, other];
}
