import { expect } from '@jest/globals';
import { Redis } from 'ioredis';
import { RedisStorage } from '../../../lib/storages/redis/index.js';
import { type KeyLayout, layoutKeys } from '../../../lib/storages/redis/buffer-keys.js';
import type { RedisClient } from '../../../lib/storages/redis/lua-script.js';
import { type Fixture, startFixture, tagged } from '../../support/child-process.js';
import { crashAndDrain } from '../../support/crash-rounds.js';

/** A Redis to run the checks on: a standalone server, or a cluster (its nodes, and a client). */
export interface RedisTarget {
  readonly url: string;
  /** `host:port` of the cluster's nodes, for fixtures; absent for a standalone Redis. */
  readonly cluster?: readonly string[];
  /** A client of the test's own, which the caller closes. */
  client(): RedisClient;
}

/** A standalone Redis at `url`. */
export function standalone(url: string): RedisTarget {
  return { url, client: () => new Redis(url, { maxRetriesPerRequest: 0 }) };
}

/**
 * Crash rounds: producer processes SIGKILLed at random moments, then a drain; every acknowledged
 * push is processed, and nothing is left in the buffer's keys.
 */
export async function checkCrashRounds(
  target: RedisTarget,
  prefix: string,
  label: string,
  rounds: number,
): Promise<void> {
  const outcome = await crashAndDrain({
    label,
    rounds,
    storage: () => ({
      kind: 'redis',
      url: target.url,
      prefix,
      leaseTimeout: 300,
      ...(target.cluster ? { cluster: target.cluster } : {}),
    }),
    killAfterMs: [50, 500],
    producers: 20,
    // Bounded, so that the drain stays short however fast this machine pushes.
    perProducer: 500,
  });
  expect(outcome.exits).toEqual([...Array<string>(rounds).fill('SIGKILL'), 'exit 0']);
  expect(outcome.stderr).toEqual([]);
  expect(outcome.drain).toMatchObject({ remaining: 0, inFlight: 0, timedOut: false });
  expect(outcome.acknowledged.size).toBeGreaterThan(rounds * 50);
  expect(outcome.lost).toEqual([]);
  // Nothing left behind: no entry in the stream, no retry waiting.
  const client = target.client();
  const { keys } = layoutKeys(prefix, 'default') as KeyLayout;
  try {
    expect(await client.xlen(keys.stream)).toBe(0);
    expect(await client.hlen(keys.data)).toBe(0);
  } finally {
    client.disconnect();
  }
}

/**
 * Three processes share one buffer; the first to lease a batch is killed while it holds it: the
 * survivors take its records over (after `leaseTimeout`) and process every record pushed.
 */
export async function checkTakeoverOfKilledInstance(
  target: RedisTarget,
  prefix: string,
  records: number,
  leaseTimeout: number,
): Promise<void> {
  const start = (workMs: number): Fixture =>
    startFixture('redis/shared-instance', {
      args: [
        JSON.stringify({ url: target.url, cluster: target.cluster, prefix, workMs, leaseTimeout }),
      ],
    });
  // The slow one starts first, so that it is the first to lease a batch.
  const slow = start(60_000);
  await slow.waitForLine((line) => line.startsWith('READY'), 10_000);
  const survivors = [start(5), start(5)];
  await Promise.all(
    survivors.map((c) => c.waitForLine((line) => line.startsWith('READY'), 10_000)),
  );

  const client = target.client();
  const producer = new RedisStorage<string>({ client, prefix });
  const pushed: string[] = [];
  try {
    for (let burst = 0; burst < records / 50; burst++) {
      const ids = Array.from({ length: 50 }, (_, i) => `rec-${burst * 50 + i}`);
      await Promise.all(ids.map((id) => producer.append([id])));
      pushed.push(...ids);
    }
  } finally {
    await producer.close();
    client.disconnect();
  }

  const started = await slow.waitForLine((line) => line.startsWith('S '), 10_000);
  const leased = started.slice(2).split(' ');
  slow.process.kill('SIGKILL');
  await slow.exited;

  const deadline = Date.now() + 20_000;
  const processedBySurvivors = (): Set<string> =>
    new Set(survivors.flatMap((c) => tagged(c.lines, 'P')));
  while (Date.now() < deadline && pushed.some((id) => !processedBySurvivors().has(id))) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const done = processedBySurvivors();
  expect(pushed.filter((id) => !done.has(id))).toEqual([]);
  expect(leased.length).toBeGreaterThan(0);
  expect(leased.filter((id) => !done.has(id))).toEqual([]);
  expect(tagged(slow.lines, 'P')).toEqual([]);
  // Both survivors did work: the buffer really was shared.
  for (const survivor of survivors) expect(tagged(survivor.lines, 'P').length).toBeGreaterThan(0);
  const all = survivors.flatMap((c) => tagged(c.lines, 'P'));
  process.stdout.write(
    `redis multi-instance test${target.cluster ? ' (cluster)' : ''}: ${pushed.length} records, ` +
      `${leased.length} taken over from the killed instance, ` +
      `${all.length - done.size} processed more than once\n`,
  );

  for (const survivor of survivors) survivor.process.kill('SIGTERM');
  const exits = await Promise.all(survivors.map((c) => c.exited));
  expect(exits).toEqual([
    { code: 0, signal: null },
    { code: 0, signal: null },
  ]);
}
