import type { StoredRecord } from '../../../lib/core/storage.js';
import type { RedisStorage } from '../../../lib/storages/redis/index.js';
import type { RedisClient } from '../../../lib/storages/redis/lua-script.js';

/**
 * What BufIO 0.2.0 left in Redis, written the way its scripts wrote it: keys `<prefix>:<part>`
 * without a hash tag; stream entries with the payload in field `d`; released records in `data`
 * as '<attempts>:<payload>' with `retry` scored by visibleAt; recovered ones in `due` by zero-padded
 * id; records leased from `due` in `lease` scored by expiry (Redis clock).
 */
export class Layout020 {
  constructor(
    private readonly client: RedisClient,
    readonly prefix: string,
  ) {}

  key(part: string): string {
    return `${this.prefix}:${part}`;
  }

  async append(n: number): Promise<string> {
    return (await this.client.xadd(this.key('stream'), '*', 'd', JSON.stringify({ n }))) as string;
  }

  /** A consumer of the group reads `count` entries: they are pending, leased to it. */
  async read(consumer: string, count: number): Promise<string[]> {
    await this.client.xgroup('CREATE', this.key('stream'), 'bufio', '0', 'MKSTREAM').catch(() => 0);
    const reply = (await this.client.xreadgroup(
      'GROUP',
      'bufio',
      consumer,
      'COUNT',
      count,
      'STREAMS',
      this.key('stream'),
      '>',
    )) as [string, [string, string[]][]][];
    return reply[0]?.[1].map(([id]) => id) ?? [];
  }

  /** A record out of the stream, in `data`, ready (`due`), waiting (`retry`) or leased. */
  async held(
    id: string,
    n: number,
    attempts: number,
    where: { retryAt?: number; leasedUntil?: number },
  ): Promise<void> {
    await this.client.hset(this.key('data'), id, `${attempts}:${JSON.stringify({ n })}`);
    if (where.retryAt !== undefined) await this.client.zadd(this.key('retry'), where.retryAt, id);
    else if (where.leasedUntil !== undefined) {
      await this.client.zadd(this.key('lease'), where.leasedUntil, id);
    } else {
      const [ms, seq] = id.split('-') as [string, string];
      await this.client.zadd(
        this.key('due'),
        0,
        `${ms.padStart(20, '0')}-${seq.padStart(20, '0')}`,
      );
    }
  }

  async serverNow(): Promise<number> {
    const [seconds, micros] = await this.client.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }
}

/** Reserves and acks until nothing comes back; returns every record reserved. */
export async function drain(
  storage: RedisStorage<{ n: number }>,
  now: number,
): Promise<StoredRecord<{ n: number }>[]> {
  const all: StoredRecord<{ n: number }>[] = [];
  for (;;) {
    const batch = await storage.reserve(100, { now });
    if (batch.length === 0) return all;
    all.push(...batch);
    await storage.ack(batch);
  }
}
