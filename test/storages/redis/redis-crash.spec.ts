import { afterAll, expect, it } from '@jest/globals';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { type Child, idsOf, seededRandom, startFixture } from './child-process.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

const describeRedis = await describeWith('redis');
const ROUNDS = 5;
const LEASE_TIMEOUT = 300;

describeRedis('RedisStorage under SIGKILL', () => {
  const prefix = uniquePrefix('crash');
  afterAll(() => deleteKeys(prefix));

  it('processes every acknowledged push at least once across killed processes', async () => {
    const seed = Number(process.env.BUFIO_TEST_SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    process.stdout.write(`redis crash test: seed ${seed} (replay with BUFIO_TEST_SEED=${seed})\n`);
    const children: Child[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const child = startFixture('crash-producer', {
        url: REDIS_URL,
        prefix,
        mode: 'produce',
        tag: `r${round}`,
        producers: 20,
        leaseTimeout: LEASE_TIMEOUT,
      });
      children.push(child);
      // Kill only once pushes flow, at a random moment after that.
      await child.waitFor((line) => line.startsWith('A '), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.floor(random() * 450)));
      child.process.kill('SIGKILL');
      await child.exited;
    }
    const drain = startFixture('crash-producer', {
      url: REDIS_URL,
      prefix,
      mode: 'drain',
      tag: 'drain',
      producers: 0,
      leaseTimeout: LEASE_TIMEOUT,
    });
    children.push(drain);
    await drain.waitFor((line) => line === 'DONE', 20_000);
    await drain.exited;

    const acknowledged = children.flatMap((child) => idsOf(child.lines, 'A'));
    const processed = children.flatMap((child) => idsOf(child.lines, 'P'));
    const seen = new Map<string, number>();
    for (const id of processed) seen.set(id, (seen.get(id) ?? 0) + 1);
    const lost = acknowledged.filter((id) => !seen.has(id));
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    const unacknowledged = seen.size - new Set(acknowledged).size;
    process.stdout.write(
      `redis crash test: ${ROUNDS} kills, ${acknowledged.length} acknowledged, ` +
        `${seen.size} distinct processed (${unacknowledged} pushed but killed before the ack ` +
        `printed), ${duplicates} processed more than once\n`,
    );
    expect(acknowledged.length).toBeGreaterThan(ROUNDS * 50);
    expect(lost).toEqual([]);
  }, 60_000);
});
