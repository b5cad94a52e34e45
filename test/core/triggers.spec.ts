import { describe, expect, it, jest } from '@jest/globals';
import { BufIO } from '../../lib/index.js';
import { deferred, range, recordingWorker, settle } from '../support/workers.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

describe('flush triggers', () => {
  fakeTimersInEachTest();

  it('dispatches a batch as soon as batchSize records wait, without waiting for a timer', async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ worker: worker.work, batchSize: 3, flushInterval: 60_000 });
    bufio.start();
    await bufio.push([1, 2]);
    expect(worker.batches).toEqual([]);
    await bufio.push(3);
    expect(worker.batches).toEqual([[1, 2, 3]]);
    await bufio.stop();
  });

  it('dispatches when the oldest record has waited flushInterval, not before', async () => {
    const worker = recordingWorker<string>();
    const bufio = new BufIO<string>({ worker: worker.work, batchSize: 100, flushInterval: 1000 });
    bufio.start();
    await bufio.push('a');
    await jest.advanceTimersByTimeAsync(600);
    await bufio.push('b');
    await jest.advanceTimersByTimeAsync(399);
    expect(worker.batches).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(worker.batches).toEqual([['a', 'b']]);
    await bufio.stop();
  });

  it('times records pushed after a batch from their own arrival', async () => {
    const worker = recordingWorker<string>();
    const bufio = new BufIO<string>({ worker: worker.work, batchSize: 2, flushInterval: 1000 });
    bufio.start();
    await bufio.push(['a', 'b']); // a full batch, dispatched at once
    await jest.advanceTimersByTimeAsync(500);
    await bufio.push('c');
    await jest.advanceTimersByTimeAsync(999);
    expect(worker.batches).toEqual([['a', 'b']]);
    await jest.advanceTimersByTimeAsync(1);
    expect(worker.batches).toEqual([['a', 'b'], ['c']]);
    await bufio.stop();
  });

  it('never hands the worker more than batchSize records', async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ worker: worker.work, batchSize: 4, flushInterval: 50 });
    bufio.start();
    await bufio.push(range(0, 11));
    await bufio.flush();
    expect(worker.batches.map((b) => b.length)).toEqual([4, 4, 3]);
    expect(worker.processed).toEqual(range(0, 11));
    await bufio.stop();
  });

  it('caps a batch by maxBatchBytes (the first record always goes)', async () => {
    const worker = recordingWorker<string>();
    const bufio = new BufIO<string>({
      worker: worker.work,
      batchSize: 100,
      maxBatchBytes: 12,
      flushInterval: 50,
    });
    bufio.start();
    // JSON of each is 5 bytes ("aaa"), so two fit in 12 bytes; the long one goes alone.
    await bufio.push(['aaa', 'bbb', 'ccc', 'x'.repeat(50), 'ddd']);
    await bufio.flush();
    expect(worker.batches).toEqual([['aaa', 'bbb'], ['ccc'], ['x'.repeat(50)], ['ddd']]);
    await bufio.stop();
  });

  it('flush() processes everything buffered and resolves when the worker is done', async () => {
    const gate = deferred();
    const worker = recordingWorker<number>(() => gate.promise);
    const bufio = new BufIO<number>({ worker: worker.work, batchSize: 10, flushInterval: 60_000 });
    bufio.start();
    await bufio.push([1, 2, 3]);
    let flushed = false;
    const flushing = bufio.flush().then(() => {
      flushed = true;
    });
    await settle();
    expect(worker.batches).toEqual([[1, 2, 3]]);
    expect(flushed).toBe(false);
    gate.resolve();
    await flushing;
    expect(bufio.stats().processed).toBe(3);
    await bufio.stop();
  });

  it('with concurrency 1, a flush during a running flush waits for it instead of overlapping', async () => {
    const gates = [deferred(), deferred()];
    let running = 0;
    let maxRunning = 0;
    const worker = recordingWorker<number>(async (_records, _context, call) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await gates[call - 1]?.promise;
      running--;
    });
    const bufio = new BufIO<number>({ worker: worker.work, batchSize: 10, flushInterval: 60_000 });
    bufio.start();
    await bufio.push([1, 2]);
    const first = bufio.flush();
    await settle();
    await bufio.push([3, 4]);
    const second = bufio.flush();
    await settle();
    expect(worker.batches).toEqual([[1, 2]]);
    gates[0]?.resolve();
    await first;
    await settle();
    expect(worker.batches).toEqual([
      [1, 2],
      [3, 4],
    ]);
    gates[1]?.resolve();
    await second;
    expect(maxRunning).toBe(1);
    await bufio.stop();
  });

  it('runs up to `concurrency` worker calls at once', async () => {
    const gate = deferred();
    let running = 0;
    let maxRunning = 0;
    const worker = recordingWorker<number>(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await gate.promise;
      running--;
    });
    const bufio = new BufIO<number>({
      worker: worker.work,
      batchSize: 2,
      concurrency: 3,
      flushInterval: 60_000,
    });
    bufio.start();
    await bufio.push(range(0, 10));
    await settle();
    expect(running).toBe(3);
    expect(bufio.stats().inFlight).toBe(6);
    gate.resolve();
    await bufio.flush();
    expect(maxRunning).toBe(3);
    expect(worker.processed.sort((a, b) => a - b)).toEqual(range(0, 10));
    await bufio.stop();
  });

  it('accepts pushes before start() and processes them once started', async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ worker: worker.work, batchSize: 2, flushInterval: 1000 });
    await bufio.push([1, 2, 3]);
    await jest.advanceTimersByTimeAsync(5000);
    expect(worker.batches).toEqual([]);
    bufio.start();
    await settle();
    expect(worker.batches).toEqual([[1, 2]]);
    await jest.advanceTimersByTimeAsync(1000);
    expect(worker.batches).toEqual([[1, 2], [3]]);
    await bufio.stop();
  });

  it('keeps push order into the worker with concurrency 1', async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ worker: worker.work, batchSize: 7, flushInterval: 10 });
    bufio.start();
    for (let i = 0; i < 100; i++) void bufio.push(i);
    await jest.advanceTimersByTimeAsync(100);
    expect(worker.processed).toEqual(range(0, 100));
    await bufio.stop();
  });
});
