import { afterAll, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { killFixtures } from '../../support/child-process.js';
import { crashAndDrain } from '../../support/crash-rounds.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

const describeRedis = await describeWith('redis');
const ROUNDS = 5;

describeRedis('RedisStorage under SIGKILL', () => {
  const prefix = uniquePrefix('crash');
  afterAll(async () => {
    killFixtures();
    await deleteKeys(prefix);
  });

  it('processes every acknowledged push at least once across killed processes', async () => {
    const outcome = await crashAndDrain({
      label: 'RedisStorage crash test',
      rounds: ROUNDS,
      storage: () => ({ kind: 'redis', url: REDIS_URL, prefix, leaseTimeout: 300 }),
      killAfterMs: [50, 500],
      producers: 20,
      // Bounded, so that the drain stays short however fast this machine pushes.
      perProducer: 500,
    });
    expect(outcome.exits).toEqual([...Array<string>(ROUNDS).fill('SIGKILL'), 'exit 0']);
    expect(outcome.stderr).toEqual([]);
    expect(outcome.drain).toMatchObject({ remaining: 0, inFlight: 0, timedOut: false });
    expect(outcome.acknowledged.size).toBeGreaterThan(ROUNDS * 50);
    expect(outcome.lost).toEqual([]);
    // Nothing left behind: no entry in the stream, no retry waiting.
    const client = new Redis(REDIS_URL);
    try {
      expect(await client.xlen(`${prefix}:stream`)).toBe(0);
      expect(await client.hlen(`${prefix}:data`)).toBe(0);
    } finally {
      client.disconnect();
    }
  }, 60_000);
});
