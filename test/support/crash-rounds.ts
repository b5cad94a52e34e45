import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CrashConfig, CrashStorage } from '../fixtures/storages/crash-producer.js';
import { startFixture, tagged } from './child-process.js';
import { seededRandom, testSeed } from './seeded-random.js';
import { sleep } from './wait.js';

/** How the crash test of one storage kind runs (see `test/fixtures/storages/crash-producer.ts`). */
export interface CrashPlan {
  /** Printed with the seed and the summary, e.g. `'FileStorage crash test'`. */
  readonly label: string;
  readonly rounds: number;
  /** Where round `round` produces (the same records, perhaps with other settings). */
  storage(round: number): CrashStorage;
  /** Each round is killed this long after its first acknowledged push, at random, in ms. */
  readonly killAfterMs: readonly [min: number, max: number];
  readonly producers?: number;
  readonly perProducer?: number;
  /** The worker writes rows keyed by `context.ids` (see `CrashConfig.rows`). */
  readonly rows?: CrashConfig['rows'];
}

/** What the drain printed: the `stop()` summary and how the storage was found. */
export interface DrainReport {
  readonly processed: number;
  readonly remaining: number;
  readonly timedOut: boolean;
  readonly waitedMs: number;
  /** FileStorage only: records found at open, and cuts made. */
  readonly recovered?: number;
  readonly cuts?: number;
}

export interface CrashOutcome {
  /** Ids whose push resolved in a killed process. */
  readonly acknowledged: ReadonlySet<number>;
  /** How many times each id was processed, by any process. */
  readonly processed: ReadonlyMap<number, number>;
  /** Acknowledged ids never processed: must be none. */
  readonly lost: readonly number[];
  readonly drain: DrainReport;
  /** Every line the processes wrote to stderr (storage and engine errors). */
  readonly stderr: readonly string[];
  /** Every process ended as planned: the producers by SIGKILL, the drain with code 0. */
  readonly exits: readonly string[];
}

/**
 * Runs `rounds` producer processes over one storage, SIGKILLs each at a random moment once its
 * pushes flow, then a drain process; and tells which acknowledged records were never processed.
 */
export async function crashAndDrain(plan: CrashPlan): Promise<CrashOutcome> {
  const seed = testSeed(plan.label);
  const random = seededRandom(seed);
  const [min, max] = plan.killAfterMs;
  const summary: string[] = [];
  const acknowledged = new Set<number>();
  const processed = new Map<number, number>();
  const stderr: string[] = [];
  const exits: string[] = [];
  const logs = await fs.mkdtemp(path.join(os.tmpdir(), 'bufio-crash-'));
  /** The `A` and `P` lines a process logged; a line cut short by the kill is left out. */
  const logged = async (file: string): Promise<string[]> => {
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    return text.split('\n').slice(0, -1);
  };
  const collect = (lines: readonly string[]): void => {
    for (const id of tagged(lines, 'P')) {
      processed.set(Number(id), (processed.get(Number(id)) ?? 0) + 1);
    }
  };
  const run = (config: Omit<CrashConfig, 'seed' | 'log'>, salt: number) => {
    const log = path.join(logs, `process-${salt}.log`);
    const child = startFixture('storages/crash-producer', {
      args: [JSON.stringify({ ...config, log, seed: seed + salt })],
    });
    return { child, log };
  };

  let drained: string;
  try {
    for (let round = 0; round < plan.rounds; round++) {
      const { child, log: file } = run(
        {
          storage: plan.storage(round),
          mode: 'produce',
          firstId: round * 10_000_000,
          producers: plan.producers,
          perProducer: plan.perProducer,
          rows: plan.rows,
        },
        round,
      );
      await child.waitForLine(/^PUSHING$/, 15_000);
      const delay = Math.round(min + random() * (max - min));
      await sleep(delay);
      child.process.kill('SIGKILL');
      const exit = await child.exited;
      exits.push(exit.signal === 'SIGKILL' ? 'SIGKILL' : `unexpected ${JSON.stringify(exit)}`);
      const lines = await logged(file);
      const acked = tagged(lines, 'A').map(Number);
      for (const id of acked) acknowledged.add(id);
      collect(lines);
      stderr.push(...child.stderr);
      summary.push(
        `round ${round}: killed ${delay} ms after its first push, ${acked.length} acked`,
      );
    }

    const drain = run(
      { storage: plan.storage(plan.rounds), mode: 'drain', rows: plan.rows },
      plan.rounds,
    );
    drained = await drain.child.waitForLine(/^DRAINED /, 60_000);
    const exit = await drain.child.exited;
    exits.push(exit.code === 0 ? 'exit 0' : `unexpected ${JSON.stringify(exit)}`);
    collect(await logged(drain.log));
    stderr.push(...drain.child.stderr);
  } finally {
    await fs.rm(logs, { recursive: true, force: true });
  }
  const report = JSON.parse(drained.slice('DRAINED '.length)) as DrainReport;

  const lost = [...acknowledged].filter((id) => !processed.has(id));
  const repeated = [...processed.values()].filter((n) => n > 1).length;
  const unacknowledged = [...processed.keys()].filter((id) => !acknowledged.has(id)).length;
  summary.push(
    `drain: ${drained.slice('DRAINED '.length)}`,
    `${acknowledged.size} acknowledged, ${processed.size} processed, ${lost.length} lost, ` +
      `${repeated} processed more than once (killed between work and ack), ` +
      `${unacknowledged} processed but never seen acknowledged (killed before the push was logged)`,
  );
  process.stdout.write(`${plan.label}:\n  ${summary.join('\n  ')}\n`);
  return { acknowledged, processed, lost, drain: report, stderr, exits };
}
