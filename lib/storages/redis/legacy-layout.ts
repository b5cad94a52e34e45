import type { LegacyKeys } from './buffer-keys.js';
import { type LuaScript, type RedisClient } from './lua-script.js';
import { MIGRATE } from './scripts.js';

/** What a `LegacyLayout` needs from its storage. */
export interface LegacyLayoutOptions {
  readonly keys: LegacyKeys;
  /** The buffer's keys, in script order. */
  readonly bufferKeys: readonly string[];
  readonly group: string;
  readonly leaseTimeout: number;
  /** Runs one Redis call as the storage does (bounded, errors typed). */
  run<R>(operation: string, call: (client: RedisClient) => Promise<R>): Promise<R>;
  /** Appends serialized records to the buffer's stream, in order, all or none. */
  append(texts: readonly string[]): Promise<unknown>;
  /** A candidate scope, in case moving records creates the stream. */
  newScope(): string;
  /** Runs a script of the storage. */
  script(
    script: LuaScript,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown>;
}

/** Records moved per script call: each call holds Redis up for about this many records. */
const MIGRATE_CAP = 1000;

/**
 * Records that BufIO 0.2.0 left under its key names (`bufio:<name>:stream` … without a hash tag),
 * moved into the buffer's keys. The storage looks at every `recover()` (at start, and on the
 * engine's recovery timer), so that records of 0.2.0 processes still running during a rolling
 * upgrade come over too, once those processes let go of them.
 *
 * On a standalone Redis, the MIGRATE script moves everything (undelivered entries, retries with
 * their time and attempts, due records, and leases that lapsed) in one atomic step per call. On a
 * cluster, 0.2.0 could only append (every other script failed with CROSSSLOT), so only its stream
 * holds records: they are read and appended to the buffer's stream, then deleted, key by key (a
 * crash in between appends them twice, never loses them).
 */
export class LegacyLayout {
  /** Whether 0.2.0's keys held records when last looked at (unknown at first: assume so). */
  private present = true;

  constructor(private readonly options: LegacyLayoutOptions) {}

  /** Moves what 0.2.0 left and nobody holds; returns how many records it made ready. */
  async migrate(cluster: boolean): Promise<number> {
    return cluster ? this.migrateStream() : this.migrateAll();
  }

  /** Records waiting under 0.2.0's keys (stored and not leased). */
  async waiting(cluster: boolean): Promise<number> {
    if (!this.present) return 0;
    const { keys, group } = this.options;
    if (cluster) return this.options.run('size', (client) => client.xlen(keys.stream));
    const results = await this.options.run('size', (client) =>
      client
        .pipeline()
        .xlen(keys.stream)
        .xpending(keys.stream, group)
        .zcard(keys.retry)
        .zcard(keys.due)
        .exec(),
    );
    const [length, pending, retries, due] = (results ?? []).map(([error, value]) =>
      error ? 0 : value,
    );
    return Number(length) - pendingCount(pending) + Number(retries) + Number(due);
  }

  /** Records 0.2.0 processes hold leased. */
  async leased(cluster: boolean): Promise<number> {
    if (!this.present || cluster) return 0;
    const { keys, group } = this.options;
    const results = await this.options.run('leasedElsewhere', (client) =>
      client.pipeline().xpending(keys.stream, group).zcard(keys.lease).exec(),
    );
    const [pending, leases] = (results ?? []).map(([error, value]) => (error ? 0 : value));
    return pendingCount(pending) + Number(leases);
  }

  private async migrateAll(): Promise<number> {
    const { keys, bufferKeys, group, leaseTimeout } = this.options;
    const legacy = [keys.stream, keys.retry, keys.due, keys.lease, keys.data];
    let ready = 0;
    for (;;) {
      const [moved, madeReady, left] = (await this.options.script(
        MIGRATE,
        [...bufferKeys, ...legacy],
        [group, leaseTimeout, MIGRATE_CAP, this.options.newScope()],
      )) as [number, number, number];
      ready += Number(madeReady);
      this.present = Number(left) > 0;
      if (Number(moved) < MIGRATE_CAP) return ready;
    }
  }

  private async migrateStream(): Promise<number> {
    const { stream } = this.options.keys;
    let moved = 0;
    for (;;) {
      const entries = await this.options.run('recover', (client) =>
        client.xrange(stream, '-', '+', 'COUNT', MIGRATE_CAP),
      );
      if (entries.length === 0) {
        this.present = false;
        return moved;
      }
      await this.options.append(entries.map(([, fields]) => payloadOf(fields)));
      const ids = entries.map(([id]) => id);
      await this.options.run('recover', (client) => client.xdel(stream, ...ids));
      moved += entries.length;
    }
  }
}

/** The record's payload in a stream entry's fields (`d`), or '' when it has none. */
export function payloadOf(fields: readonly unknown[]): string {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (String(fields[i]) === 'd') return String(fields[i + 1]);
  }
  return '';
}

/** The count in an `XPENDING` summary, or 0 for anything else (no group: an error). */
export function pendingCount(summary: unknown): number {
  return Array.isArray(summary) ? Number(summary[0]) || 0 : 0;
}
