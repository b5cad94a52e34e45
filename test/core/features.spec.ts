import { describe, expect, it, jest } from '@jest/globals';
import {
  BufIO,
  InvalidOptionsError,
  UnsupportedError,
  type Instrumentation,
  type WorkReport,
} from '../../lib/index.js';
import { memoryStorageAs, range, recordingWorker } from '../support/workers.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

interface Counter {
  readonly name: string;
  readonly value: number;
}

describe('write coalescing', () => {
  it('replaces a waiting record with a later one of the same key, in place', async () => {
    const worker = recordingWorker<Counter>();
    const bufio = new BufIO<Counter>({ worker: worker.work, coalesce: { key: (c) => c.name } });
    await bufio.push([
      { name: 'a', value: 1 },
      { name: 'b', value: 1 },
    ]);
    await bufio.push({ name: 'a', value: 5 });
    bufio.start();
    await bufio.flush();
    expect(worker.batches).toEqual([
      [
        { name: 'a', value: 5 },
        { name: 'b', value: 1 },
      ],
    ]);
    expect(bufio.stats()).toMatchObject({ pushed: 3, coalesced: 1, processed: 2 });
    await bufio.stop();
  });

  it('merges with the merge function, within one push as well', async () => {
    const worker = recordingWorker<Counter>();
    const bufio = new BufIO<Counter>({
      worker: worker.work,
      coalesce: {
        key: (c) => c.name,
        merge: (older, newer) => ({ name: older.name, value: older.value + newer.value }),
      },
    });
    await bufio.push({ name: 'hits', value: 1 });
    await bufio.push([
      { name: 'hits', value: 2 },
      { name: 'misses', value: 1 },
      { name: 'misses', value: 1 },
    ]);
    bufio.start();
    await bufio.flush();
    expect(worker.processed).toEqual([
      { name: 'hits', value: 3 },
      { name: 'misses', value: 2 },
    ]);
    expect(bufio.stats().coalesced).toBe(2);
    await bufio.stop();
  });

  it('does not coalesce into a record already handed to the worker', async () => {
    const worker = recordingWorker<Counter>();
    const bufio = new BufIO<Counter>({
      worker: worker.work,
      batchSize: 1,
      coalesce: { key: (c) => c.name },
    });
    bufio.start();
    await bufio.push({ name: 'a', value: 1 }); // dispatched at once
    await bufio.push({ name: 'a', value: 2 });
    await bufio.flush();
    expect(worker.processed).toEqual([
      { name: 'a', value: 1 },
      { name: 'a', value: 2 },
    ]);
    expect(bufio.stats().coalesced).toBe(0);
    await bufio.stop();
  });

  it('gives pushAndWait callers of coalesced records the merged record outcome', async () => {
    const bufio = new BufIO<Counter, number>({
      worker: async (records) => records.map((r) => r.value * 100),
      coalesce: {
        key: (c) => c.name,
        merge: (older, newer) => ({ name: older.name, value: older.value + newer.value }),
      },
    });
    const first = bufio.pushAndWait({ name: 'x', value: 1 });
    const second = bufio.pushAndWait({ name: 'x', value: 2 });
    bufio.start();
    await bufio.flush();
    await expect(first).resolves.toBe(300);
    await expect(second).resolves.toBe(300);
    await bufio.stop();
  });

  it('is refused at construction by a storage that cannot coalesce', () => {
    const storage = memoryStorageAs<Counter>({});
    expect(() => new BufIO<Counter>({ storage, coalesce: { key: (c) => c.name } })).toThrow(
      UnsupportedError,
    );
    expect(() => new BufIO<Counter>({ storage, coalesce: { key: (c) => c.name } })).toThrow(
      /option "coalesce" needs a storage/,
    );
  });
});

describe('priority lanes', () => {
  it('takes higher lanes first, keeping order within a lane', async () => {
    const worker = recordingWorker<string>();
    const bufio = new BufIO<string>({
      worker: worker.work,
      batchSize: 4,
      priority: { lanes: ['high', 'normal', 'low'], defaultLane: 'normal', share: 0 },
    });
    await bufio.push(['n1', 'n2']);
    await bufio.push(['l1', 'l2'], { priority: 'low' });
    await bufio.push(['h1', 'h2', 'h3'], { priority: 'high' });
    bufio.start();
    await bufio.flush();
    expect(worker.batches).toEqual([
      ['h1', 'h2', 'h3', 'n1'],
      ['n2', 'l1', 'l2'],
    ]);
    await bufio.stop();
  });

  it('leaves a share of each batch to lower lanes, so they are not starved', async () => {
    const worker = recordingWorker<string>();
    const bufio = new BufIO<string>({
      worker: worker.work,
      batchSize: 10,
      priority: { lanes: 2, share: 0.2 },
    });
    await bufio.push(
      range(0, 30).map((i) => `high${i}`),
      { priority: 0 },
    );
    await bufio.push(range(0, 5).map((i) => `low${i}`));
    bufio.start();
    await bufio.flush();
    const lowPerBatch = worker.batches.map((b) => b.filter((r) => r.startsWith('low')).length);
    expect(lowPerBatch.slice(0, 2)).toEqual([2, 2]);
    expect(worker.processed.filter((r) => r.startsWith('high'))).toEqual(
      range(0, 30).map((i) => `high${i}`),
    );
    await bufio.stop();
  });

  it('refuses an unknown lane, and a lane when priority is not configured', async () => {
    const lanes = new BufIO<string>({
      worker: async () => undefined,
      priority: { lanes: ['a', 'b'] },
    });
    await expect(lanes.push('x', { priority: 'c' })).rejects.toThrow(/one of the lanes \(a, b\)/);
    const plain = new BufIO<string>({ worker: async () => undefined });
    await expect(plain.push('x', { priority: 1 })).rejects.toBeInstanceOf(InvalidOptionsError);
  });

  it('validates the lanes option and needs a storage with lanes', () => {
    expect(() => new BufIO({ priority: { lanes: [] } })).toThrow(/priority.lanes/);
    expect(() => new BufIO({ priority: { lanes: ['a', 'a'] } })).toThrow(/distinct/);
    expect(() => new BufIO({ priority: { lanes: 2, share: 2 } })).toThrow(/priority.share/);
    expect(() => new BufIO({ storage: memoryStorageAs({}), priority: { lanes: 2 } })).toThrow(
      UnsupportedError,
    );
  });
});

describe('bisectOnError', () => {
  fakeTimersInEachTest();

  it('isolates a poison record: the good records around it are processed, only it is dead-lettered', async () => {
    const processed: number[] = [];
    const worker = recordingWorker<number>(async (records) => {
      if (records.includes(13)) throw new Error('poison 13');
      processed.push(...records);
    });
    const deadLettered: number[] = [];
    const bufio = new BufIO<number>({
      worker: worker.work,
      batchSize: 16,
      bisectOnError: true,
      retry: { maxAttempts: 2, initialDelay: 10, maxDelay: 50 },
    });
    bufio.on('deadLettered', ({ records }) => deadLettered.push(...records));
    bufio.start();
    await bufio.push(range(0, 16));
    await jest.advanceTimersByTimeAsync(5_000);
    expect(deadLettered).toEqual([13]);
    expect(processed.sort((a, b) => a - b)).toEqual(range(0, 16).filter((n) => n !== 13));
    // 16 → 8 → 4 → 2 → 1, then its own last attempt.
    expect(worker.batches.filter((b) => b.includes(13)).map((b) => b.length)).toEqual([
      16, 8, 4, 2, 1, 1,
    ]);
    await bufio.stop();
  });

  it('without it, a poison record takes its whole batch to the dead letters', async () => {
    const worker = recordingWorker<number>(async (records) => {
      if (records.includes(3)) throw new Error('poison');
    });
    const deadLettered: number[] = [];
    const bufio = new BufIO<number>({
      worker: worker.work,
      batchSize: 8,
      retry: { maxAttempts: 2, initialDelay: 10 },
    });
    bufio.on('deadLettered', ({ records }) => deadLettered.push(...records));
    bufio.start();
    await bufio.push(range(0, 8));
    await jest.advanceTimersByTimeAsync(1_000);
    expect(deadLettered).toEqual(range(0, 8));
    await bufio.stop();
  });
});

describe('instrumentation', () => {
  it('sees every push and wraps every worker call, with its report', async () => {
    const pushes: number[][] = [];
    const calls: { records: readonly number[]; attempt: number; report: WorkReport }[] = [];
    const hook: Instrumentation<number> = {
      onPush: (_ids, records) => void pushes.push([...records]),
      aroundWork: async (call, run) => {
        const report = await run();
        calls.push({ records: call.records, attempt: call.attempt, report });
        return report;
      },
    };
    const bufio = new BufIO<number>({
      worker: async (records) => records.map((n) => (n === 2 ? new Error('two') : n)),
      retry: { maxAttempts: 1 },
    });
    const remove = bufio.use(hook);
    bufio.start();
    await bufio.push([1, 2, 3]);
    await bufio.flush();
    expect(pushes).toEqual([[1, 2, 3]]);
    expect(calls).toEqual([
      { records: [1, 2, 3], attempt: 1, report: { failed: 1, error: undefined } },
    ]);
    expect(bufio.stats()).toMatchObject({ processed: 2, deadLettered: 1 });
    remove();
    await bufio.push(4);
    await bufio.flush();
    expect(pushes).toHaveLength(1);
    expect(calls).toHaveLength(1);
    expect(bufio.stats().processed).toBe(3);
    await bufio.stop();
  });

  it('counts the batch as failed, never lost, when instrumentation does not run the worker', async () => {
    const bufio = new BufIO<number>({ worker: async () => undefined, retry: { maxAttempts: 1 } });
    bufio.use({ aroundWork: async () => ({ failed: 0, error: undefined }) });
    bufio.start();
    await bufio.push([1, 2]);
    await bufio.flush();
    expect(bufio.stats()).toMatchObject({ processed: 0, deadLettered: 2 });
    await bufio.stop();
  });
});

describe('write coalescing with a full buffer', () => {
  it("onFull 'error' refuses a push whole: none of its records is merged into waiting ones", async () => {
    const worker = recordingWorker<Counter>();
    const bufio = new BufIO<Counter>({
      worker: worker.work,
      batchSize: 2,
      maxBufferedRecords: 2,
      onFull: 'error',
      coalesce: {
        key: (c) => c.name,
        merge: (a, b) => ({ name: a.name, value: a.value + b.value }),
      },
    });
    await bufio.push([
      { name: 'a', value: 1 },
      { name: 'b', value: 1 },
    ]);
    await expect(
      bufio.push([
        { name: 'a', value: 10 },
        { name: 'c', value: 1 },
      ]),
    ).rejects.toMatchObject({ code: 'BUFIO_BUFFER_FULL' });
    await bufio.push({ name: 'b', value: 5 }); // merges: no room needed
    bufio.start();
    await bufio.flush();
    expect(worker.processed).toEqual([
      { name: 'a', value: 1 },
      { name: 'b', value: 6 },
    ]);
    expect(bufio.stats()).toMatchObject({ pushed: 3, coalesced: 1 });
    await bufio.stop();
  });
});
