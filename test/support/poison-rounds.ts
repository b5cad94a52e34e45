import { expect } from '@jest/globals';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CrashStorage } from '../fixtures/storages/open-storage.js';
import type { PoisonConfig } from '../fixtures/storages/poison-worker.js';
import { startFixture, tagged } from './child-process.js';

/** A crash-loop test over one durable storage (see `test/fixtures/storages/poison-worker.ts`). */
export interface PoisonPlan extends Omit<PoisonConfig, 'log'> {
  readonly label: string;
  /** Records to push, in the first process. */
  readonly records: number;
  /** Processes started at most: a storage that does not count deliveries loops until then. */
  readonly maxRounds: number;
  /** How long one process may run, in ms. */
  readonly roundTimeoutMs?: number;
}

export interface PoisonOutcome {
  /** Processes started. */
  readonly rounds: number;
  /** Whether the last process found the buffer empty and drained (rather than the cap ending it). */
  readonly drained: boolean;
  /** How many completed calls processed each record. */
  readonly processed: ReadonlyMap<number, number>;
  readonly deadLettered: readonly {
    readonly record: number;
    readonly code: string;
    readonly crashes: number;
  }[];
  /** `attempts/deliveries` of each delivery of the poison record, as the storage reported them. */
  readonly poisonDeliveries: readonly string[];
  /** How each process ended: `SIGKILL` (the poison), `exit 0`, or what went wrong. */
  readonly exits: readonly string[];
  readonly stderr: readonly string[];
}

/**
 * Starts poison-worker processes over one storage, one after another, each killing itself on the
 * poison record, until one finds the buffer empty and drains, or `maxRounds` were started.
 */
export async function poisonRounds(plan: PoisonPlan): Promise<PoisonOutcome> {
  const logs = await fs.mkdtemp(path.join(os.tmpdir(), 'bufio-poison-'));
  const log = path.join(logs, 'rounds.log');
  const exits: string[] = [];
  const stderr: string[] = [];
  let drained = false;
  let rounds = 0;
  try {
    while (rounds < plan.maxRounds && !drained) {
      const config: PoisonConfig = {
        storage: plan.storage,
        log,
        records: rounds === 0 ? plan.records : undefined,
        poison: plan.poison,
        batchSize: plan.batchSize,
        concurrency: plan.concurrency,
        maxAttempts: plan.maxAttempts,
        deliveryLedger: plan.deliveryLedger,
      };
      rounds++;
      const child = startFixture('storages/poison-worker', { args: [JSON.stringify(config)] });
      const timer = setTimeout(() => child.process.kill('SIGKILL'), plan.roundTimeoutMs ?? 30_000);
      const exit = await child.exited;
      clearTimeout(timer);
      stderr.push(...child.stderr);
      drained = exit.code === 0 && child.lines.some((line) => line.startsWith('DRAINED '));
      const killedItself = (await readLines(log)).at(-1)?.startsWith('K ') === true;
      exits.push(
        drained
          ? 'exit 0'
          : exit.signal === 'SIGKILL' && killedItself
            ? 'SIGKILL'
            : `unexpected ${JSON.stringify(exit)}`,
      );
      if (!drained && !(exit.signal === 'SIGKILL' && killedItself)) break;
    }
    const lines = await readLines(log);
    const processed = new Map<number, number>();
    for (const id of tagged(lines, 'P')) {
      processed.set(Number(id), (processed.get(Number(id)) ?? 0) + 1);
    }
    const deadLettered = lines
      .filter((line) => line.startsWith('D '))
      .map((line) => {
        const [, record, code, crashes] = line.split(' ');
        return { record: Number(record), code: String(code), crashes: Number(crashes) };
      });
    const poisonDeliveries = lines
      .filter((line) => line.startsWith('R '))
      .map((line) => line.split(' ').slice(2).join('/'));
    process.stdout.write(
      `${plan.label}: ${rounds} process(es), ${exits.join(', ')}; poison deliveries ` +
        `(attempts/deliveries): ${poisonDeliveries.join(' ')}; dead-lettered ` +
        `${JSON.stringify(deadLettered)}\n`,
    );
    return { rounds, drained, processed, deadLettered, poisonDeliveries, exits, stderr };
  } finally {
    await fs.rm(logs, { recursive: true, force: true });
  }
}

async function readLines(file: string): Promise<string[]> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(0, -1);
}

/**
 * The crash-loop test every durable storage runs: 120 records, the poison 57th, batches of 16,
 * two calls at once, maxAttempts 2. The guard needs maxAttempts + log2(16 × 2) = 7 deaths; the
 * cap leaves room for a few more before a storage that does not count deliveries fails.
 */
export function poisonPlan(
  label: string,
  storage: CrashStorage,
  extra: Partial<PoisonPlan> = {},
): PoisonPlan {
  return {
    label,
    storage,
    records: 120,
    poison: 57,
    batchSize: 16,
    concurrency: 2,
    maxAttempts: 2,
    maxRounds: 12,
    ...extra,
  };
}

/** Runs `plan` and asserts the guard's promise: the poison alone dead-lettered, the rest processed. */
export async function expectPoisonIsolated(plan: PoisonPlan): Promise<PoisonOutcome> {
  const outcome = await poisonRounds(plan);
  expect(crashLoopFailures(plan, outcome)).toEqual([]);
  expect(outcome.exits.slice(0, -1).every((exit) => exit === 'SIGKILL')).toBe(true);
  expect(outcome.stderr).toEqual([]);
  return outcome;
}

/** What every crash-loop spec asserts: the poison alone is dead-lettered, the rest processed. */
export function crashLoopFailures(plan: PoisonPlan, outcome: PoisonOutcome): string[] {
  const failures: string[] = [];
  if (!outcome.drained) {
    failures.push(
      `the buffer never emptied in ${outcome.rounds} processes (exits: ${outcome.exits.join(', ')}); ` +
        `the poison record was delivered with attempts/deliveries ${outcome.poisonDeliveries.join(' ')}` +
        ` — a storage that does not count deliveries redelivers it for ever`,
    );
  }
  const dead = outcome.deadLettered.map((d) => `${d.record}:${d.code}`);
  if (dead.join() !== `${plan.poison}:BUFIO_CRASH_LOOP`) {
    failures.push(`dead-lettered ${JSON.stringify(dead)}, expected only the poison record`);
  }
  const missing: number[] = [];
  for (let record = 0; record < plan.records; record++) {
    if (record !== plan.poison && !outcome.processed.has(record)) missing.push(record);
  }
  if (missing.length > 0) failures.push(`never processed: ${missing.join(' ')}`);
  return failures;
}
