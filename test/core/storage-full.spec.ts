import { afterAll, describe, expect, it, jest } from '@jest/globals';
import {
  BufIO,
  MemoryStorage,
  type OnFullPolicy,
  RecordDroppedError,
  type RecordId,
  type ReserveOptions,
  type Storage,
  StorageFullError,
  type StoredRecord,
} from '../../lib/index.js';
import { FileStorage } from '../../lib/storages/file/index.js';
import { removeDir, tempDir } from '../storages/file/support.js';
import { waitFor } from '../support/wait.js';
import { deferred, range, recordingWorker, settle } from '../support/workers.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

/**
 * A storage with room for `capacity` records (a byte budget, a disk): an append that does not fit
 * is refused with `StorageFullError` and stores nothing; an ack gives the room back. `diskFull`
 * refuses every append, as a disk that others filled.
 */
class BoundedStorage<T> implements Storage<T> {
  readonly durable = false;
  readonly shared = false;
  diskFull = false;
  refusals = 0;
  private held = 0;
  private readonly inner = new MemoryStorage<T>();
  readonly appendOne: Storage<T>['appendOne'];

  constructor(
    private readonly capacity: number,
    private readonly async: boolean,
  ) {
    this.appendOne = async ? undefined : (record) => this.store([record])[0] as RecordId;
  }

  append(records: readonly T[]): RecordId[] | Promise<RecordId[]> {
    if (!this.async) return this.store(records);
    return new Promise((resolve, reject) => {
      setImmediate(() => {
        try {
          resolve(this.store(records));
        } catch (error) {
          reject(error);
        }
      });
    });
  }
  reserve(limit: number, options: ReserveOptions): StoredRecord<T>[] {
    return this.inner.reserve(limit, options);
  }
  ack(records: readonly StoredRecord<T>[]): void {
    this.held -= records.length;
  }
  release(records: readonly StoredRecord<T>[], visibleAt: number): void {
    this.inner.release(records, visibleAt);
  }
  size(): number {
    return this.inner.size();
  }
  recover(): number {
    return 0;
  }
  close(): void {}

  private store(records: readonly T[]): RecordId[] {
    if (this.diskFull || this.held + records.length > this.capacity) {
      this.refusals++;
      throw new StorageFullError('the journal is over its byte budget', '/var/lib/app/buffer');
    }
    this.held += records.length;
    return this.inner.append(records);
  }
}

/** A turn of the event loop: the asynchronous storage answers on `setImmediate`. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setUp(onFull: OnFullPolicy, options: { async?: boolean; capacity?: number } = {}) {
  const gate = deferred();
  const worker = recordingWorker<number>(() => gate.promise);
  const storage = new BoundedStorage<number>(options.capacity ?? 3, options.async ?? true);
  const bufio = new BufIO<number>({
    storage,
    worker: worker.work,
    batchSize: 3,
    flushInterval: 60_000,
    onFull,
  });
  const dropped: number[] = [];
  bufio.on('dropped', ({ records }) => dropped.push(...records));
  bufio.start();
  return { bufio, storage, worker, gate, dropped };
}

describe('a storage refusing appends for lack of room (StorageFullError), under onFull', () => {
  fakeTimersInEachTest({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });

  for (const async of [true, false]) {
    const kind = async ? 'an asynchronous storage' : 'a synchronous storage (push fast path)';

    it(`'block' parks the pushes and lets them in, in order, once acks free room: ${kind}`, async () => {
      const { bufio, storage, worker, gate } = setUp('block', { async });
      for (const i of range(1, 4)) await bufio.push(i); // the storage holds 3: a batch goes
      const admitted: number[] = [];
      const parked = range(4, 8).map((i) => bufio.push(i).then(() => admitted.push(i)));
      await jest.advanceTimersByTimeAsync(5000); // retries on the backoff timer: still full
      expect(admitted).toEqual([]);
      expect(storage.refusals).toBeGreaterThan(1);
      expect(bufio.stats()).toMatchObject({ blockedPushes: 4, refused: 0, dropped: 0 });

      gate.resolve(); // [1, 2, 3] acked: room for 3, then for the last
      await Promise.all(parked);
      expect(admitted).toEqual([4, 5, 6, 7]);
      await bufio.flush();
      expect(worker.processed).toEqual(range(1, 8));
      expect(bufio.stats()).toMatchObject({ pushed: 7, processed: 7, refused: 0, dropped: 0 });
      await bufio.stop();
    });
  }

  it("'block' tries again on a backoff timer (100 ms doubling to 1 s) when others free the disk", async () => {
    const { bufio, storage, worker, gate } = setUp('block', { capacity: 100 });
    gate.resolve();
    storage.diskFull = true;
    let admitted = false;
    const push = bufio.push(1).then(() => (admitted = true));
    await jest.advanceTimersByTimeAsync(10_000);
    const refusals = storage.refusals;
    expect(refusals).toBeGreaterThanOrEqual(10); // 100, 200, 400, 800, then every 1000 ms
    expect(refusals).toBeLessThanOrEqual(14);
    storage.diskFull = false;
    await jest.advanceTimersByTimeAsync(1000);
    await push;
    expect(admitted).toBe(true);
    await bufio.flush();
    expect(worker.processed).toEqual([1]);
    await bufio.stop();
  });

  it("'drop-newest' drops what does not fit, counts and reports it, and resolves the push", async () => {
    const { bufio, dropped } = setUp('drop-newest');
    await bufio.push([1, 2, 3]);
    await bufio.push(4);
    await expect(bufio.pushAndWait(5)).rejects.toBeInstanceOf(RecordDroppedError);
    expect(dropped).toEqual([4, 5]);
    expect(bufio.stats()).toMatchObject({ pushed: 3, dropped: 2, refused: 0 });
  });

  it("'drop-oldest' drops the oldest waiting records to make room for the new ones", async () => {
    const { bufio, worker, gate, dropped } = setUp('drop-oldest', { capacity: 4 });
    await bufio.push([1, 2, 3]); // a batch, in the worker until the gate opens
    await bufio.push(4);
    await bufio.push(5); // the storage holds 1-4: 4 is the oldest waiting, it goes
    expect(dropped).toEqual([4]);
    gate.resolve();
    await bufio.flush();
    expect(worker.processed).toEqual([1, 2, 3, 5]);
    expect(bufio.stats()).toMatchObject({ pushed: 5, dropped: 1, processed: 4 });
    await bufio.stop();
  });

  it("'error' rejects with the storage's StorageFullError, counted as refused", async () => {
    const { bufio } = setUp('error');
    await bufio.push([1, 2, 3]);
    const refused = bufio.push(4);
    await expect(refused).rejects.toBeInstanceOf(StorageFullError);
    await expect(refused).rejects.toMatchObject({ code: 'BUFIO_STORAGE_FULL' });
    await settle();
    expect(bufio.stats()).toMatchObject({ pushed: 3, refused: 1, dropped: 0 });
  });

  it('a drain lets parked pushes in as it frees room, and refuses those it cannot', async () => {
    const { bufio, storage, worker, gate } = setUp('block');
    await bufio.push([1, 2, 3]);
    const late = bufio.push(4);
    await turn(); // its append is refused: parked
    expect(storage.refusals).toBe(1);
    gate.resolve();
    const summary = await bufio.stop();
    await late;
    expect(worker.processed).toEqual([1, 2, 3, 4]);
    expect(summary).toMatchObject({ processed: 4, timedOut: false });

    const full = setUp('block');
    full.storage.diskFull = true;
    const never = full.bufio.push(1);
    await full.bufio.stop({ timeout: 0 });
    await expect(never).rejects.toMatchObject({ code: 'BUFIO_CLOSED' });
    expect(full.storage.refusals).toBeGreaterThan(0);
  });
});

interface Padded {
  readonly n: number;
  readonly pad: string;
}
const padded = (n: number): Padded => ({ n, pad: 'x'.repeat(1000) });

describe("'block' over the storages' own budgets: room freed by acks lets the pushes in", () => {
  const directories: string[] = [];
  afterAll(async () => {
    for (const directory of directories) await removeDir(directory);
  });

  const storages: [string, () => Promise<Storage<Padded>>][] = [
    ['MemoryStorage maxBytes', async () => new MemoryStorage<Padded>({ maxBytes: 10_000 })],
    [
      'FileStorage maxJournalBytes',
      async () => {
        const directory = await tempDir('storage-full');
        directories.push(directory);
        return FileStorage.open<Padded>({
          directory,
          durability: 'none',
          segmentBytes: 64 * 1024,
          maxJournalBytes: 4 * 64 * 1024,
        });
      },
    ],
  ];

  for (const [kind, create] of storages) {
    it(`${kind}: blocked pushes resolve once batches are acked, and nothing is lost`, async () => {
      const storage = await create();
      const watchRoom = jest.spyOn(storage as Required<Storage<Padded>>, 'watchRoom');
      const gate = deferred();
      const worker = recordingWorker<Padded>(() => gate.promise);
      const bufio = new BufIO<Padded>({
        storage,
        worker: worker.work,
        batchSize: 4,
        flushInterval: 60_000,
        onFull: 'block',
      });
      bufio.start();
      // More than the budget holds (about 9 records in memory, 240 in the journal).
      const total = kind.startsWith('File') ? 400 : 40;
      const pushes = range(0, total).map((n) => bufio.push(padded(n)));
      await waitFor(
        'a push to be blocked by the full storage',
        () => bufio.stats().blockedPushes > 0,
      );
      expect(watchRoom).toHaveBeenCalledTimes(1);
      gate.resolve();
      await Promise.all(pushes);
      await bufio.flush();
      const processed = worker.processed.map((record) => record.n);
      expect([...processed].sort((a, b) => a - b)).toEqual(range(0, total));
      expect(bufio.stats()).toMatchObject({
        pushed: total,
        processed: total,
        refused: 0,
        dropped: 0,
      });
      await bufio.stop();
      await storage.close();
    });
  }
});
