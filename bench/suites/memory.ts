import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BufIO } from '../../lib/index.js';
import {
  deferred,
  fmt,
  fmtBytes,
  now,
  roundOrder,
  settledHeap,
  summarize,
  type Measurement,
  type RunConfig,
  type SuiteResult,
} from '../harness.js';
import { makeRecord, type BenchRecord } from '../records.js';

const RECORDS = 1_000_000;
const TARGET_OVERHEAD = 64;

const FRESH = 'plain array, fresh process';
const PLAIN = 'plain array, this process';
const IDLE = 'BufIO, not started';
const BLOCKED = 'BufIO, started, worker blocked';

/** A container holding `RECORDS` fresh records, and how to let it go. */
interface Holder {
  /** Referenced until the heap has been measured, so the container cannot be collected early. */
  readonly container: unknown;
  release(): Promise<void>;
}

/** Each builder makes its own records, so that only what it holds is measured. */
const BUILDERS: Record<string, () => Promise<Holder>> = {
  [PLAIN]: async () => {
    const records: BenchRecord[] = [];
    for (let i = 0; i < RECORDS; i++) records.push(makeRecord(i));
    return { container: records, release: async () => {} };
  },
  [IDLE]: async () => {
    const bufio = new BufIO<BenchRecord>({
      worker: () => {},
      maxBufferedRecords: RECORDS,
    });
    for (let i = 0; i < RECORDS; i++) void bufio.push(makeRecord(i));
    checkBuffered(bufio, RECORDS);
    // Dropping the buffer frees it; stop() would hand every record to the worker first.
    return { container: bufio, release: async () => {} };
  },
  [BLOCKED]: async () => {
    const gate = deferred();
    const bufio = new BufIO<BenchRecord>({
      worker: () => gate.promise,
      maxBufferedRecords: RECORDS,
      flushInterval: 60_000,
    });
    bufio.on('error', () => {});
    bufio.start();
    for (let i = 0; i < RECORDS; i++) void bufio.push(makeRecord(i));
    // The first batch is in the worker, which waits on the gate; the rest are buffered.
    checkBuffered(bufio, RECORDS - 100);
    return {
      container: bufio,
      release: async () => {
        gate.resolve();
        await bufio.stop({ timeout: 0 });
      },
    };
  },
};

function checkBuffered(bufio: BufIO<BenchRecord>, expected: number): void {
  const { buffered } = bufio.stats();
  if (buffered !== expected) {
    throw new Error(`expected ${expected} buffered records, BufIO reports ${buffered}`);
  }
}

/** Heap growth, per record, of building one container, after full collections. */
async function bytesPerRecord(build: () => Promise<Holder>): Promise<number> {
  const before = settledHeap();
  const holder = await build();
  const after = settledHeap();
  if (holder.container === undefined) throw new Error('the container was not built');
  await holder.release();
  return (after - before) / RECORDS;
}

const PROBE = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'probes',
  'plain-array-heap.js',
);

/** The plain array measured in a child process that never loaded BufIO (see the probe). */
async function freshProcessBytesPerRecord(): Promise<number> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--expose-gc',
    PROBE,
    String(RECORDS),
  ]);
  return (JSON.parse(stdout) as { bytesPerRecord: number }).bytesPerRecord;
}

/** Suite 4: heap bytes per buffered record, against the same records in a plain array. */
export async function memorySuite(config: RunConfig): Promise<SuiteResult> {
  const started = now();
  const rounds = config.quick ? 2 : 4;
  const inProcess = Object.keys(BUILDERS);
  // A round that is not kept: it runs every code path once, so that V8's object layouts have
  // settled before anything is measured (see the note on field representations).
  for (const name of inProcess) await bytesPerRecord(BUILDERS[name] as () => Promise<Holder>);
  const names = [FRESH, ...inProcess];
  const perRound = new Map<string, number[]>(names.map((n) => [n, []]));
  for (let round = 0; round < rounds; round++) {
    for (const name of roundOrder(names, round)) {
      const value =
        name === FRESH
          ? await freshProcessBytesPerRecord()
          : await bytesPerRecord(BUILDERS[name] as () => Promise<Holder>);
      perRound.get(name)?.push(value);
    }
    config.log(`  memory: round ${round + 1}/${rounds} done`);
  }

  const plain = perRound.get(FRESH) ?? [];
  const measurements: Measurement[] = names.map((name) => {
    const values = perRound.get(name) ?? [];
    const overhead = values.map((v, i) => v - plain[i]!);
    return {
      contender: name,
      metric: 'heap bytes per record',
      unit: 'B/record',
      summary: summarize(values),
      extra: { rounds: values, overheadPerRound: overhead, overhead: summarize(overhead) },
    };
  });
  const overheadOf = (name: string): ReturnType<typeof summarize> =>
    summarize((perRound.get(name) ?? []).map((v, i) => v - plain[i]!));

  const rows = names.map((name) => {
    const m = measurements.find((x) => x.contender === name) as Measurement;
    const o = overheadOf(name);
    return [
      name,
      `${fmt(m.summary.median)} (${fmt(m.summary.min)}–${fmt(m.summary.max)})`,
      name === FRESH ? '–' : `${fmt(o.median)} (${fmt(o.min)}–${fmt(o.max)})`,
      fmtBytes(m.summary.median * RECORDS),
    ];
  });
  const targets = [IDLE, BLOCKED].map((name) => {
    const o = overheadOf(name);
    return {
      name: `${name}: overhead per buffered record`,
      goal: `≤ ${TARGET_OVERHEAD} B over a plain array (fresh process)`,
      measured: `${fmt(o.median)} B (rounds ${fmt(o.min)}–${fmt(o.max)})`,
      met: o.n > 0 ? o.median <= TARGET_OVERHEAD : null,
    };
  });

  return {
    id: 'memory',
    title: '4. Memory per buffered record',
    method: [
      `Heap used (\`process.memoryUsage().heapUsed\` after two \`global.gc()\` calls; the bench runs with \`--expose-gc\`) before and after building a container of ${RECORDS.toLocaleString('en-US')} fresh records \`{ id, name, amount }\` (two small integers and a shared string, all stored inside the object), divided by the record count. The records themselves are counted in every row. The **overhead** column subtracts the plain array measured in the same round in a child process that never loaded BufIO: what a buffer costs beyond the array a hand-written loop would fill with \`push\`, including any effect BufIO's code has on how V8 lays out the caller's records.`,
      'Why a fresh process: V8 shares the representation of a field among object literals with the same number of properties and the same leading properties. Once any three-property literal starting with `id` holds a number that is not a small integer, every later `{ id, … }` record of that shape keeps its `id` in a separate 16-byte heap number. The "plain array, this process" row shows the same array built after BufIO ran in this process.',
      `BufIO keeps the records unprocessed, with \`maxBufferedRecords\` = ${RECORDS.toLocaleString('en-US')}: once without \`start()\` (nothing dispatched), once started with a worker that never returns (the first batch of 100 sits in the worker; the rest wait). One discarded warm-up round, then ${rounds} rounds, the order rotating and reversing from round to round (\`roundOrder\` in bench/harness.ts); a runner of our own, not tinybench (one heap measurement per container per round is the point here).`,
    ],
    tables: [
      {
        title: `heap per record at ${RECORDS.toLocaleString('en-US')} records, bytes (median over rounds, min–max)`,
        columns: [
          'container',
          'heap per record',
          'overhead vs plain array in a fresh process',
          'heap in all',
        ],
        rows,
      },
    ],
    measurements,
    targets,
    notes: [],
    seconds: (now() - started) / 1000,
  };
}
