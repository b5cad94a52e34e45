import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OutagePhase, OutageRunConfig } from '../probes/outage-run.js';
import {
  fmt,
  fmtBytes,
  fmtRatio,
  now,
  summarize,
  type Measurement,
  type RunConfig,
  type SuiteResult,
  type Target,
} from '../harness.js';
import { runTag } from '../services.js';
import { OUTAGE_STORAGES, type OutageStorage } from './outage-storages.js';

const PRODUCERS = 100;
const MiB = 1024 * 1024;

/** The targets. */
const GOALS = {
  delayP99Ms: 50,
  peakRss: 200 * MiB,
  pushRate: 300_000,
  /** Push rate during an outage against the same pushes with the worker up, same run. */
  pushVsBaseline: 0.9,
  drainRate: 500_000,
  reopenSeconds: 10,
} as const;

const PROBE = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'probes',
  'outage-run.js',
);

/** What one child process measured. */
interface RunOutcome {
  readonly phases: OutagePhase[];
  /** The process's peak RSS (getrusage), in bytes; 0 for a process killed before it said. */
  readonly maxRss: number;
}

/**
 * Runs the probe; with `kill`, SIGKILLs it once it has pushed everything (the backlog in place).
 * Rejects with its stderr when it fails.
 */
function runProbe(
  config: OutageRunConfig,
  kill: boolean,
  log: (line: string) => void,
): Promise<RunOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', PROBE, JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const phases: OutagePhase[] = [];
    let maxRss = 0;
    let stderr = '';
    let partial = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('PHASE ')) {
          const phase = JSON.parse(line.slice('PHASE '.length)) as OutagePhase;
          phases.push(phase);
          log(
            `  outage: ${config.storage} ${config.mode}: ${phase.phase} of ${phase.records.toLocaleString('en-US')} records in ${fmt(phase.seconds)} s, event-loop p99 ${fmt(phase.delayP99)} ms, RSS up to ${fmtBytes(phase.rssPeak)}`,
          );
        } else if (line.startsWith('DONE ')) maxRss = Number(line.slice('DONE '.length));
        else if (line === 'PUSHED' && kill) child.kill('SIGKILL');
      }
    });
    child.on('close', (code, signal) => {
      if (code === 0 || (kill && signal === 'SIGKILL')) resolve({ phases, maxRss });
      else
        reject(
          new Error(`${config.mode} run ended with ${code ?? signal}: ${stderr.slice(-2000)}`),
        );
    });
  });
}

/** The three runs of one storage: failing worker; blocked worker, killed; reopen and drain. */
interface StorageOutcome {
  readonly storage: OutageStorage;
  readonly records: number;
  readonly fail: RunOutcome;
  readonly block: RunOutcome;
  /** No outage: the worker up, the buffer about empty (at most 1,000,000 records). */
  readonly baseline: RunOutcome;
  readonly reopen: RunOutcome | undefined;
}

async function runStorage(
  storage: OutageStorage,
  records: number,
  log: (line: string) => void,
): Promise<StorageOutcome> {
  const base = { storage: storage.name, records, producers: PRODUCERS };
  const baselineTag = `${runTag()}-baseline`;
  let baseline: RunOutcome;
  try {
    baseline = await runProbe(
      { ...base, records: Math.min(records, 1_000_000), tag: baselineTag, mode: 'baseline' },
      false,
      log,
    );
  } finally {
    await storage.cleanup(baselineTag);
  }
  const failTag = `${runTag()}-fail`;
  let fail: RunOutcome;
  try {
    fail = await runProbe({ ...base, tag: failTag, mode: 'fail' }, false, log);
  } finally {
    await storage.cleanup(failTag);
  }
  const blockTag = `${runTag()}-block`;
  try {
    const block = await runProbe({ ...base, tag: blockTag, mode: 'block' }, true, log);
    const reopen = storage.reopens
      ? await runProbe({ ...base, tag: blockTag, mode: 'reopen' }, false, log)
      : undefined;
    return { storage, records, fail, block, baseline, reopen };
  } finally {
    await storage.cleanup(blockTag);
  }
}

const phaseOf = (
  run: RunOutcome | undefined,
  name: OutagePhase['phase'],
): OutagePhase | undefined => run?.phases.find((p) => p.phase === name);

const rateOf = (phase: OutagePhase | undefined): number =>
  phase === undefined ? NaN : phase.records / phase.seconds;

/**
 * Rates over the first and the last tenth of the records (a push: into an empty buffer, then a
 * deep one), and over the first nine tenths (a drain: what it runs at before the last retries
 * fall due).
 */
function tenthRates(phase: OutagePhase | undefined): {
  first: number;
  last: number;
  nineTenths: number;
} {
  const t = phase?.tenths ?? [];
  if (phase === undefined || t.length < 10) return { first: NaN, last: NaN, nineTenths: NaN };
  const tenth = phase.records / 10;
  return {
    first: tenth / t[0]!,
    last: tenth / (t[9]! - t[8]!),
    nineTenths: (9 * tenth) / t[8]!,
  };
}

/** Suite 6: a downstream outage, pushed into a durable storage, then drained. */
export async function outageSuite(config: RunConfig): Promise<SuiteResult> {
  const started = now();
  const notes: string[] = [];
  const outcomes: StorageOutcome[] = [];
  for (const storage of OUTAGE_STORAGES) {
    const missing = await storage.available();
    if (missing) {
      notes.push(`${storage.name} not measured: ${missing}`);
      continue;
    }
    const records = config.quick ? storage.records.quick : storage.records.full;
    try {
      outcomes.push(await runStorage(storage, records, config.log));
    } catch (error) {
      notes.push(`${storage.name}: ${String(error)}`);
    }
  }

  const rows: string[][] = [];
  const measurements: Measurement[] = [];
  const targets: Target[] = [];
  for (const { storage, records, fail, block, baseline, reopen } of outcomes) {
    const runs: [string, RunOutcome | undefined][] = [
      ['no outage: the worker up (the baseline)', baseline],
      ['worker fails every call', fail],
      ['worker blocks, then SIGKILL', block],
      ['reopen after SIGKILL, then drain', reopen],
    ];
    for (const [label, run] of runs) {
      if (run === undefined) continue;
      for (const phase of run.phases) {
        const tenths = phase.phase === 'open' ? undefined : tenthRates(phase);
        const tenthCell =
          tenths === undefined
            ? '–'
            : phase.phase === 'push'
              ? `first ${fmt(tenths.first)}, last ${fmt(tenths.last)}`
              : `first 90%: ${fmt(tenths.nineTenths)}`;
        rows.push([
          storage.name,
          label,
          phase.phase,
          phase.records.toLocaleString('en-US'),
          fmt(phase.seconds),
          phase.phase === 'open' ? '–' : fmt(rateOf(phase)),
          tenthCell,
          `${fmt(phase.delayP99)} / ${fmt(phase.delayMax)}`,
          fmtBytes(phase.rssPeak),
          fmtBytes(phase.heapAfter),
        ]);
        measurements.push({
          contender: `${storage.name}, ${label}`,
          metric: `${phase.phase}: records per second`,
          unit: 'records/s',
          summary: summarize(phase.phase === 'open' ? [] : [rateOf(phase)]),
          extra: { ...phase, tenthRates: tenths },
        });
      }
    }
    const all = [fail, block, reopen].flatMap((run) => run?.phases ?? []);
    const worstP99 = Math.max(...all.map((p) => p.delayP99));
    const peakRss = Math.max(
      ...[fail, block, reopen].map((run) => run?.maxRss ?? 0),
      ...all.map((p) => p.rssPeak),
    );
    const at = `${records.toLocaleString('en-US')} records`;
    const rateTarget = (name: string, phase: OutagePhase | undefined, goal: number): Target => ({
      name: `${storage.name}, ${at}: ${name}`,
      goal: `≥ ${goal.toLocaleString('en-US')} records/s`,
      measured: phase ? `${fmt(rateOf(phase))} records/s` : 'not measured',
      met: phase ? rateOf(phase) >= goal : null,
    });
    // The push goal is "no worse than with an empty buffer, within noise": the same
    // pushes with the worker up, measured in this run on this machine's disk.
    const pushed = phaseOf(baseline, 'push');
    const againstBaseline = (name: string, phase: OutagePhase | undefined): Target => ({
      name: `${storage.name}, ${at}: ${name}, against the same pushes with no outage`,
      goal: `≥ ${fmtRatio(GOALS.pushVsBaseline)}`,
      measured:
        phase && pushed
          ? `${fmtRatio(rateOf(phase) / rateOf(pushed))} (${fmt(rateOf(phase))} vs ${fmt(rateOf(pushed))} records/s)`
          : 'not measured',
      met: phase && pushed ? rateOf(phase) / rateOf(pushed) >= GOALS.pushVsBaseline : null,
    });
    targets.push(
      {
        name: `${storage.name}, ${at}: event-loop delay p99, every phase`,
        goal: `≤ ${GOALS.delayP99Ms} ms`,
        measured: `${fmt(worstP99)} ms (worst phase; max ${fmt(Math.max(...all.map((p) => p.delayMax)))} ms)`,
        met: all.length > 0 ? worstP99 <= GOALS.delayP99Ms : null,
      },
      {
        name: `${storage.name}, ${at}: peak RSS over the whole run`,
        goal: `≤ ${fmtBytes(GOALS.peakRss)}`,
        measured: fmtBytes(peakRss),
        met: peakRss > 0 ? peakRss <= GOALS.peakRss : null,
      },
      rateTarget('push while every call fails', phaseOf(fail, 'push'), GOALS.pushRate),
      rateTarget('push while the worker blocks', phaseOf(block, 'push'), GOALS.pushRate),
      rateTarget('drain once the worker is back', phaseOf(fail, 'drain'), GOALS.drainRate),
      againstBaseline('push while every call fails', phaseOf(fail, 'push')),
      againstBaseline('push while the worker blocks', phaseOf(block, 'push')),
    );
    if (storage.reopens) {
      const open = phaseOf(reopen, 'open');
      targets.push(
        rateTarget('drain after a SIGKILL and a reopen', phaseOf(reopen, 'drain'), GOALS.drainRate),
        {
          name: `${storage.name}, ${at}: reopen after SIGKILL`,
          goal: `≤ ${GOALS.reopenSeconds} s`,
          measured: open
            ? `${fmt(open.seconds)} s (the storage says ${fmt((open.storageMs ?? NaN) / 1000)} s)`
            : 'not measured',
          met: open ? open.seconds <= GOALS.reopenSeconds : null,
        },
      );
    }
  }

  return {
    id: 'outage',
    title: '6. Outage',
    method: [
      `The worker is down while ${PRODUCERS} producers each \`await push()\` records of about 100 bytes of JSON (\`{ id, name, amount, note }\`, made as they are pushed) into a started buffer over the storage (FileStorage: durability \`'fsync'\`), batchSize 1000, flushInterval 100 ms, concurrency 2, maxBufferedRecords above the record count. Each run is a child process of its own (\`bench/probes/outage-run.ts\`), so that its memory is its own.`,
      `**Worker fails every call**: each call throws, and the records go back for a retry (retry delay 0.5 to 5 s, with the engine's backoff and jitter; attempts unlimited). Once every push has resolved the worker comes back, counting, and the backlog drains (retries included, as they fall due). **Worker blocks**: its calls never return (two batches in its hands); once every push has resolved the process is killed with SIGKILL, and a new process reopens the storage and drains it with a counting worker. Drains end when every record id has been seen. **No outage** (the baseline): the same pushes (at most 1,000,000) with the worker up and counting, so that the buffer stays about empty; the outage runs' push rates are compared with it, in the same run, on the same disk.`,
      "Event-loop delay: `perf_hooks.monitorEventLoopDelay` (5 ms resolution) over each phase. RSS: sampled every 50 ms in each phase, and the process's peak from `getrusage` (`process.resourceUsage().maxRSS`). Push rate: records over the time from the first push to the last one resolved; the first and last tenth of the records are timed too (an empty buffer, then a deep one: for a shared storage, the ratio of the two is its per-record cost at depth against an empty buffer). Drain rate: records over the time until every id was seen, and over the first nine tenths (the last retries of the failing run fall due up to 5 s after the worker is back). The heap column is after full collections at the end of the phase.",
      'The machine is shared: rates move with its load (see the load average above).',
    ],
    tables: [
      {
        title: 'phases of the outage runs',
        columns: [
          'storage',
          'run',
          'phase',
          'records',
          's',
          'records/s',
          'records/s in part',
          'event-loop delay ms, p99 / max',
          'RSS peak',
          'heap after GC',
        ],
        rows,
      },
    ],
    measurements,
    targets,
    notes,
    seconds: (now() - started) / 1000,
  };
}
