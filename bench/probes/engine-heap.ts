/**
 * The engine's own heap with millions of records waiting: `node --expose-gc
 * dist/bench/probes/engine-heap.js [records]` pushes them (one record object, pushed again and
 * again) into a storage that only counts, so that what grows is what the engine keeps per waiting
 * record. Three scenarios: the worker stuck in its first call (nothing else is taken); a slow
 * worker that takes a batch per turn of the event loop while ten times as many arrive (arrival
 * runs, batches, the flush tracker at work); and an outage, where every call fails and every
 * record waits for its retry (the retry schedule at work). Prints one JSON line per scenario.
 */
import { BufIO, type RecordId, type Storage, type StoredRecord } from '../../lib/index.js';
import { settledHeap } from '../harness.js';

const total = Number(process.argv[2] ?? 10_000_000);
const record = { id: 1, payload: 'x'.repeat(64) };
type Rec = typeof record;

/** Appends count; a reserve hands out the same record object as often as it is asked. */
class CountingStorage implements Storage<Rec> {
  readonly durable = false;
  readonly shared = false;
  waiting = 0;
  private nextId = 0;
  append(records: readonly Rec[]): RecordId[] {
    this.waiting += records.length;
    return records.map(() => this.nextId++);
  }
  appendOne(): RecordId {
    this.waiting++;
    return this.nextId++;
  }
  reserve(limit: number): StoredRecord<Rec>[] {
    const n = Math.min(limit, this.waiting);
    this.waiting -= n;
    return Array.from({ length: n }, () => ({ id: 0, record, attempts: 0, deliveries: 1 }));
  }
  ack(): void {}
  release(records: readonly StoredRecord<Rec>[]): void {
    this.waiting += records.length;
  }
  size(): number {
    return this.waiting;
  }
  recover(): number {
    return 0;
  }
  close(): void {}
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

type Worker = () => Promise<void>;
const WORKERS: Record<string, Worker> = {
  stuck: () => new Promise<void>(() => undefined),
  slow: () => turn(),
  failing: () => Promise.reject(new Error('the database is down')),
};

async function measure(name: string, kind: keyof typeof WORKERS, perTurn: number): Promise<void> {
  const storage = new CountingStorage();
  const worker = WORKERS[kind]!;
  const bufio = new BufIO<Rec>({
    storage,
    worker,
    batchSize: 100,
    flushInterval: 5000,
    maxBufferedRecords: total * 2,
    retry: { maxAttempts: 1000 },
  });
  bufio.on('error', () => undefined);
  bufio.start();
  const before = settledHeap();
  const started = Date.now();
  for (let pushed = 0; pushed < total; pushed += perTurn) {
    for (let i = 0; i < perTurn && pushed + i < total; i++) void bufio.push(record);
    await turn();
  }
  const after = settledHeap();
  const stats = bufio.stats();
  process.stdout.write(
    `${JSON.stringify({
      scenario: name,
      pushed: stats.pushed,
      waiting: storage.waiting,
      buffered: stats.buffered,
      batches: stats.batches,
      retried: stats.retried,
      engineHeapMiB: +((after - before) / 2 ** 20).toFixed(2),
      bytesPerWaitingRecord: +((after - before) / storage.waiting).toFixed(3),
      seconds: (Date.now() - started) / 1000,
    })}\n`,
  );
  void bufio.stop({ timeout: 0 });
}

await measure('worker stuck in its first call', 'stuck', total);
await measure('slow worker: a batch of 100 per turn, 1000 pushed per turn', 'slow', 1000);
await measure(
  'outage: every call fails, each record waits up to 30 s for its retry',
  'failing',
  10_000,
);
process.exit(0);
