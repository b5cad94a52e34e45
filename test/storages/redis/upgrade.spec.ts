import { afterAll, afterEach, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { StoredRecord } from '../../../lib/core/storage.js';
import { RedisStorage } from '../../../lib/storages/redis/index.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { drain, Layout020 } from './layout-020.js';
import { deleteKeys } from './redis-keys.js';

const describeRedis = await describeWith('redis');
const LEASE_TIMEOUT = 300;

const byNumber = (records: readonly StoredRecord<{ n: number }>[]): [number, number, number][] =>
  records
    .map((r): [number, number, number] => [r.record.n, r.attempts, r.deliveries])
    .sort((a, b) => a[0] - b[0]);

describeRedis('RedisStorage over what BufIO 0.2.0 left under its key names', () => {
  const opened: RedisStorage<{ n: number }>[] = [];
  const names: string[] = [];
  afterEach(async () => {
    for (const storage of opened.splice(0)) await storage.close();
  });
  afterAll(async () => {
    for (const name of names) {
      await deleteKeys(`bufio:${name}`);
      await deleteKeys(`bufio:{${name}}`);
    }
  });

  it('moves every record 0.2.0 left, keeping attempts and retry times, and leaves live leases', async () => {
    const name = `upgrade-${process.pid}-${randomBytes(4).toString('hex')}`;
    names.push(name);
    const admin = new Redis(REDIS_URL);
    try {
      const old = new Layout020(admin, `bufio:${name}`);
      const ids: string[] = [];
      for (let n = 0; n < 10; n++) ids.push(await old.append(n));
      // 0, 1: leased by a 0.2.0 process that died; 2: leased by one still running.
      await old.read('dead-0.2.0', 2);
      await old.read('live-0.2.0', 1);
      // 3..6 left the stream as 0.2.0's scripts moved them: a retry due at 1000 (engine clock),
      // one due now, a lease that lapsed, one still held. 7..9 were never read.
      for (const id of ids.slice(3, 7)) await admin.xdel(old.key('stream'), id);
      const now = await old.serverNow();
      await old.held(ids[3]!, 3, 2, { retryAt: 1000 });
      await old.held(ids[4]!, 4, 1, {});
      await old.held(ids[5]!, 5, 1, { leasedUntil: now - 1 });
      await old.held(ids[6]!, 6, 0, { leasedUntil: now + 60_000 });
      await new Promise((resolve) => setTimeout(resolve, LEASE_TIMEOUT + 50));
      // The live process renews its lease, as 0.2.0 does (XCLAIM resets the idle time).
      await admin.xclaim(old.key('stream'), 'bufio', 'live-0.2.0', 0, ids[2]!, 'JUSTID');

      const storage = new RedisStorage<{ n: number }>({
        url: REDIS_URL,
        name,
        leaseTimeout: LEASE_TIMEOUT,
      });
      opened.push(storage);
      expect(storage.keys.stream).toBe(`bufio:{${name}}:stream`);
      // Waiting under the old names already counts: 7, 8, 9 unread, 3 to retry, 4 due.
      expect(await storage.size()).toBe(5);
      expect(await storage.recover()).toBe(7);
      expect(await storage.leasedElsewhere()).toBe(2);
      // Before the retry's time: everything else, with its attempts; a lapsed lease counted.
      const first = await drain(storage, 999);
      expect(byNumber(first)).toEqual([
        [0, 0, 2],
        [1, 0, 2],
        [4, 1, 2],
        [5, 1, 3],
        [7, 0, 1],
        [8, 0, 1],
        [9, 0, 1],
      ]);
      expect(byNumber(await drain(storage, 1000))).toEqual([[3, 2, 3]]);

      // The live 0.2.0 process finishes one record; the other's lease lapses: it comes over too.
      await admin.xack(old.key('stream'), 'bufio', ids[2]!);
      await admin.xdel(old.key('stream'), ids[2]!);
      await admin.zadd(old.key('lease'), now - 1, ids[6]!);
      expect(await storage.recover()).toBe(1);
      expect(byNumber(await drain(storage, 1000))).toEqual([[6, 0, 2]]);
      expect(await storage.leasedElsewhere()).toBe(0);
      expect(await storage.size()).toBe(0);
      for (const part of ['stream', 'retry', 'due', 'lease', 'data']) {
        expect(await admin.exists(old.key(part))).toBe(0);
      }
    } finally {
      admin.disconnect();
    }
  });
});
