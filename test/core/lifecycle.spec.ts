import { describe, expect, it, jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BufIO, BufIOClosedError, DrainTimeoutError, NoWorkerError } from '../../lib/index.js';
import { deferred, memoryStorageAs, range, recordingWorker, settle } from '../support/workers.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

describe('lifecycle', () => {
  fakeTimersInEachTest();

  it('stop() drains everything buffered and resolves with a summary', async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ worker: worker.work, batchSize: 4, flushInterval: 60_000 });
    bufio.start();
    await bufio.push(range(0, 10));
    const drained: unknown[] = [];
    bufio.on('drained', (summary) => drained.push(summary));
    const summary = await bufio.stop();
    expect(worker.processed).toEqual(range(0, 10));
    expect(summary).toMatchObject({
      processed: 10,
      deadLettered: 0,
      remaining: 0,
      inFlight: 0,
      timedOut: false,
    });
    expect(drained).toEqual([summary]);
    expect(bufio.state).toBe('stopped');
  });

  it('push after stop() rejects with BufIOClosedError', async () => {
    const bufio = new BufIO<number>({ worker: async () => undefined });
    bufio.start();
    await bufio.stop();
    await expect(bufio.push(1)).rejects.toBeInstanceOf(BufIOClosedError);
    await expect(bufio.push(1)).rejects.toMatchObject({ code: 'BUFIO_CLOSED' });
    await expect(bufio.pushAndWait(1)).rejects.toBeInstanceOf(BufIOClosedError);
    expect(() => bufio.start()).toThrow(BufIOClosedError);
  });

  it('a push racing stop() is either processed or rejected, never lost', async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ worker: worker.work, batchSize: 100, flushInterval: 60_000 });
    bufio.start();
    const before = bufio.push(1);
    const stopping = bufio.stop();
    const after = bufio.push(2);
    await expect(before).resolves.toBeUndefined();
    await expect(after).rejects.toBeInstanceOf(BufIOClosedError);
    await stopping;
    expect(worker.processed).toEqual([1]);
  });

  it('waits for retries that fall due within the timeout', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
    const worker = recordingWorker<number>((_r, _c, call) => {
      if (call === 1) throw new Error('transient');
    });
    const bufio = new BufIO<number>({ worker: worker.work, retry: { initialDelay: 2000 } });
    bufio.start();
    await bufio.push([1, 2]);
    const stopping = bufio.stop({ timeout: 5000 });
    await jest.advanceTimersByTimeAsync(1000);
    const summary = await stopping;
    expect(summary).toMatchObject({ processed: 2, deadLettered: 0, timedOut: false });
    jest.restoreAllMocks();
  });

  it('after the timeout, hands what a MemoryStorage still holds to deadLetter with DrainTimeoutError', async () => {
    const gate = deferred();
    const worker = recordingWorker<number>(() => gate.promise);
    const deadLetter = jest.fn<(records: number[], error: Error) => void>();
    const bufio = new BufIO<number>({
      worker: worker.work,
      batchSize: 2,
      flushInterval: 60_000,
      deadLetter,
    });
    bufio.start();
    await bufio.push([1, 2, 3, 4, 5]);
    const stopping = bufio.stop({ timeout: 1000 });
    await jest.advanceTimersByTimeAsync(1000);
    const summary = await stopping;
    expect(summary).toMatchObject({ timedOut: true, inFlight: 2, remaining: 0, deadLettered: 3 });
    expect(deadLetter).toHaveBeenCalledWith([3, 4], expect.any(DrainTimeoutError));
    expect(deadLetter).toHaveBeenCalledWith([5], expect.any(DrainTimeoutError));
    // The call still running finishes later, and its records count as processed.
    gate.resolve();
    await settle();
    expect(bufio.stats()).toMatchObject({ processed: 2, deadLettered: 3, buffered: 0 });
  });

  it('records of a running call that fails after the timeout are dead-lettered, not retried', async () => {
    const gate = deferred();
    const worker = recordingWorker<number>(async () => {
      await gate.promise;
      throw new Error('late failure');
    });
    const deadLettered: (readonly number[])[] = [];
    const bufio = new BufIO<number>({ worker: worker.work, flushInterval: 60_000 });
    bufio.on('deadLettered', ({ records }) => deadLettered.push(records));
    bufio.start();
    await bufio.push([1, 2]);
    const stopping = bufio.stop({ timeout: 100 });
    await jest.advanceTimersByTimeAsync(100);
    await stopping;
    gate.resolve();
    await settle(20);
    expect(deadLettered).toEqual([[1, 2]]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('a durable storage keeps what was not drained, and the summary says how much', async () => {
    const gate = deferred();
    const worker = recordingWorker<number>(() => gate.promise);
    const storage = memoryStorageAs<number>({ durable: true });
    const bufio = new BufIO<number>({
      worker: worker.work,
      storage,
      batchSize: 2,
      flushInterval: 60_000,
    });
    bufio.start();
    await bufio.push([1, 2, 3, 4, 5]);
    const stopping = bufio.stop({ timeout: 500 });
    await jest.advanceTimersByTimeAsync(500);
    const summary = await stopping;
    expect(summary).toMatchObject({ timedOut: true, remaining: 3, deadLettered: 0 });
    expect(storage.inner.size()).toBe(3);
    gate.resolve();
  });

  it('stop() called twice returns the same drain', async () => {
    const bufio = new BufIO<number>({ worker: async () => undefined });
    bufio.start();
    expect(bufio.stop()).toBe(bufio.stop());
    await bufio.stop();
  });

  it('leaves no timer behind after stop()', async () => {
    const bufio = new BufIO<number>({ worker: async () => undefined, flushInterval: 1000 });
    bufio.start();
    await bufio.push([1, 2, 3]);
    expect(jest.getTimerCount()).toBeGreaterThan(0);
    await bufio.stop();
    expect(jest.getTimerCount()).toBe(0);
  });

  it('start() without a worker throws NoWorkerError; setWorker() attaches one before start', async () => {
    const bufio = new BufIO<number>();
    expect(() => bufio.start()).toThrow(NoWorkerError);
    const worker = recordingWorker<number>();
    bufio.setWorker(worker.work);
    bufio.start();
    await bufio.push(1);
    await bufio.flush();
    expect(worker.processed).toEqual([1]);
    expect(() => bufio.setWorker(worker.work)).toThrow(/before start/);
    await bufio.stop();
  });

  it('blocked pushes are let in while draining, and rejected if the drain ends first', async () => {
    const gate = deferred();
    const worker = recordingWorker<number>(() => gate.promise);
    const bufio = new BufIO<number>({
      worker: worker.work,
      batchSize: 2,
      maxBufferedRecords: 2,
      flushInterval: 60_000,
    });
    bufio.start();
    await bufio.push([1, 2]); // in flight, stuck
    await bufio.push([3, 4]); // fills the buffer
    const blocked = bufio.push(5).catch((error: unknown) => error);
    const stopping = bufio.stop({ timeout: 1000 });
    await jest.advanceTimersByTimeAsync(1000);
    await stopping;
    expect(await blocked).toBeInstanceOf(BufIOClosedError);
    gate.resolve();
  });
});

describe('fire-and-forget push', () => {
  it('does not cause an unhandled rejection on the normal path', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      const bufio = new BufIO<number>({
        worker: async () => undefined,
        batchSize: 10,
        flushInterval: 5,
      });
      bufio.start();
      for (let i = 0; i < 1000; i++) void bufio.push(i);
      await bufio.stop();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(bufio.stats().processed).toBe(1000);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('a process that forgets stop()', () => {
  it('still processes what it pushed before exiting', async () => {
    const script = fileURLToPath(
      new URL('../../dist/test/fixtures/core/forgets-stop.js', import.meta.url),
    );
    const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 20_000 });
    expect(JSON.parse(stdout.trim())).toEqual({ processed: 25, deadLettered: 0 });
  });
});

describe('records left in a durable storage by an earlier process', () => {
  fakeTimersInEachTest();

  function leftover(count: number, retried: number) {
    const storage = memoryStorageAs<number>({ durable: true });
    storage.inner.append(range(0, count));
    const batch = storage.inner.reserve(retried, { now: Date.now() });
    storage.inner.release(batch, Date.now() - 1);
    // As a real durable storage: recovery and size answer asynchronously.
    storage.recover = async () => 0;
    storage.size = async () => storage.inner.size();
    return storage;
  }

  it('are drained by a stop() that follows start() at once', async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({
      worker: worker.work,
      storage: leftover(120, 0),
      batchSize: 50,
    });
    bufio.start();
    const summary = await bufio.stop();
    expect(summary).toMatchObject({ processed: 120, remaining: 0, timedOut: false });
  });

  it('are all processed soon after start, without another push or a stop', async () => {
    const worker = recordingWorker<number>((records, context) => {
      if (context.attempt === 1 && records[0] !== undefined && records[0] % 7 === 0)
        throw new Error('once');
    });
    const bufio = new BufIO<number>({
      worker: worker.work,
      storage: leftover(580, 50),
      batchSize: 50,
      flushInterval: 10,
      retry: { initialDelay: 20, maxDelay: 100 },
    });
    bufio.start();
    await jest.advanceTimersByTimeAsync(2000);
    expect(bufio.stats()).toMatchObject({ processed: 580, buffered: 0 });
    await bufio.stop();
  });
});

describe('a drain with retries and concurrent calls', () => {
  it('waits for every call, including those started by a retry, before it resolves', async () => {
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const bufio = new BufIO<number>({
      batchSize: 50,
      concurrency: 2,
      flushInterval: 60_000,
      retry: { initialDelay: 0, maxDelay: 0 },
      worker: async (records, { attempt }) => {
        if (records[0] === 0 && attempt === 1) throw new Error('planned');
        await sleep(records[0] === 100 ? 50 : 5);
      },
    });
    await bufio.push(range(0, 120));
    bufio.start();
    const summary = await bufio.stop();
    expect(summary).toMatchObject({ processed: 120, inFlight: 0, remaining: 0, timedOut: false });
    expect(bufio.stats()).toMatchObject({ buffered: 0, inFlight: 0, retried: 50 });
  });
});
