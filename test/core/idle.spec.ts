import { describe, expect, it, jest } from '@jest/globals';
import {
  BufIO,
  MemoryStorage,
  type RecordId,
  type ReserveOptions,
  type Storage,
  type StoredRecord,
} from '../../lib/index.js';
import { range, recordingWorker, settle } from '../support/workers.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

/**
 * A shared storage (records in a `MemoryStorage`) that counts its round trips, and with
 * `watching` wakes its watchers when "another instance" appends (`appendElsewhere`).
 */
class SharedStorage<T> implements Storage<T> {
  readonly durable = false;
  readonly shared = true;
  readonly recoveryInterval = 30_000;
  readonly calls: string[] = [];
  readonly listeners = new Set<() => void>();
  readonly watch: Storage<T>['watch'];
  private readonly inner = new MemoryStorage<T>();

  constructor(watching: boolean) {
    this.watch = watching
      ? (listener) => {
          this.listeners.add(listener);
          return () => this.listeners.delete(listener);
        }
      : undefined;
  }

  /** Another instance appends: the records are stored, and watchers woken. */
  appendElsewhere(records: readonly T[]): void {
    this.inner.append(records);
    for (const listener of this.listeners) listener();
  }

  append(records: readonly T[]): RecordId[] {
    this.calls.push('append');
    return this.inner.append(records);
  }
  reserve(limit: number, options: ReserveOptions): StoredRecord<T>[] {
    this.calls.push('reserve');
    return this.inner.reserve(limit, options);
  }
  ack(): void {
    this.calls.push('ack');
  }
  release(records: readonly StoredRecord<T>[], visibleAt: number): void {
    this.calls.push('release');
    this.inner.release(records, visibleAt);
  }
  size(): number {
    this.calls.push('size');
    return this.inner.size();
  }
  recover(): number {
    this.calls.push('recover');
    return 0;
  }
  close(): void {}
}

/** Round trips made while `ms` of fake time pass with nothing to do. */
async function idleCalls(storage: SharedStorage<number>, ms: number): Promise<string[]> {
  storage.calls.length = 0;
  await jest.advanceTimersByTimeAsync(ms);
  return [...storage.calls];
}

describe('an idle engine on a shared storage', () => {
  fakeTimersInEachTest();

  it('with watch: waits for wake-ups, at most 2 round trips per idle second at flushInterval 10 ms', async () => {
    const storage = new SharedStorage<number>(true);
    const bufio = new BufIO<number>({ storage, worker: () => undefined, flushInterval: 10 });
    bufio.start();
    await settle();
    const calls = await idleCalls(storage, 10_000);
    expect(calls.length).toBeLessThanOrEqual(20);
    // The safety poll: a reserve every second (no recover between: recoveryInterval is 30 s).
    expect(calls.filter((c) => c === 'reserve')).toHaveLength(10);
    expect(storage.listeners.size).toBe(1);
    await bufio.stop();
    expect(storage.listeners.size).toBe(0); // stops watching
  });

  it('without watch: polls every flushInterval, as before', async () => {
    const storage = new SharedStorage<number>(false);
    const bufio = new BufIO<number>({ storage, worker: () => undefined, flushInterval: 10 });
    bufio.start();
    await settle();
    const calls = await idleCalls(storage, 1000);
    expect(calls.filter((c) => c === 'reserve').length).toBeGreaterThanOrEqual(99);
    await bufio.stop();
  });

  it('dispatches a record another instance appended within flushInterval of the wake-up', async () => {
    const storage = new SharedStorage<number>(true);
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ storage, worker: worker.work, flushInterval: 10 });
    bufio.start();
    await jest.advanceTimersByTimeAsync(333); // idle, between two safety polls
    storage.appendElsewhere([7]);
    await jest.advanceTimersByTimeAsync(9);
    expect(worker.batches).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(worker.batches).toEqual([[7]]);
    await bufio.stop();
  });

  it('takes everything a burst of wake-ups announced, with one reserve per batch', async () => {
    const storage = new SharedStorage<number>(true);
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({
      storage,
      worker: worker.work,
      batchSize: 100,
      flushInterval: 50,
    });
    bufio.start();
    await jest.advanceTimersByTimeAsync(100);
    storage.calls.length = 0;
    for (const i of range(0, 250)) storage.appendElsewhere([i]); // 250 wake-ups
    await jest.advanceTimersByTimeAsync(50);
    expect(worker.processed).toEqual(range(0, 250));
    // Three full or partial batches, then nothing more: no reserve per wake-up.
    expect(storage.calls.filter((c) => c === 'reserve')).toHaveLength(3);
    await bufio.stop();
  });

  it('still takes lapsed leases back on recoveryInterval', async () => {
    const storage = new SharedStorage<number>(true);
    const bufio = new BufIO<number>({ storage, worker: () => undefined, flushInterval: 10 });
    bufio.start();
    await settle();
    const calls = await idleCalls(storage, 60_000);
    expect(calls.filter((c) => c === 'recover')).toHaveLength(2);
    await bufio.stop();
  });
});
