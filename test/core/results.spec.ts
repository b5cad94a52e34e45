import { describe, expect, it, jest } from '@jest/globals';
import { BufIO, WorkerError, WorkTimeoutError } from '../../lib/index.js';
import { memoryStorageAs, recordingWorker } from '../support/workers.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

const NO_RETRY = { maxAttempts: 1 };

describe('worker results', () => {
  fakeTimersInEachTest();

  it('counts every record processed when the worker returns nothing', async () => {
    const bufio = new BufIO<number>({ worker: async () => undefined, batchSize: 10 });
    bufio.start();
    await bufio.push([1, 2, 3]);
    await bufio.flush();
    expect(bufio.stats()).toMatchObject({ processed: 3, failed: 0, batches: 1 });
    await bufio.stop();
  });

  it('reads an array as long as the batch as one outcome per record; Error instances fail', async () => {
    const worker = recordingWorker<number, string>((records, _context, call) =>
      call === 1
        ? records.map((n) => (n % 2 === 0 ? new Error(`even ${n}`) : `ok ${n}`))
        : records.map((n) => `ok ${n}`),
    );
    const failed: { records: readonly number[]; message: string }[] = [];
    const bufio = new BufIO<number, string>({
      worker: worker.work,
      batchSize: 10,
      retry: { maxAttempts: 2, initialDelay: 100 },
    });
    bufio.on('failed', ({ records, error }) => failed.push({ records, message: error.message }));
    bufio.start();
    await bufio.push([1, 2, 3, 4]);
    await bufio.flush();
    expect(failed).toEqual([
      { records: [2], message: 'even 2' },
      { records: [4], message: 'even 4' },
    ]);
    expect(bufio.stats()).toMatchObject({ processed: 2, failed: 2, retried: 2 });
    await jest.advanceTimersByTimeAsync(100);
    expect(worker.batches).toEqual([
      [1, 2, 3, 4],
      [2, 4],
    ]);
    expect(bufio.stats()).toMatchObject({ processed: 4, retried: 2, deadLettered: 0 });
    await bufio.stop();
  });

  it('treats an array of another length as the batch result: every record processed', async () => {
    const bufio = new BufIO<number, string>({ worker: async () => ['summary'], batchSize: 10 });
    const flushed: unknown[] = [];
    bufio.on('flushed', ({ records, results }) => flushed.push({ records, results }));
    bufio.start();
    await bufio.push([1, 2, 3]);
    await bufio.flush();
    expect(bufio.stats()).toMatchObject({ processed: 3, failed: 0 });
    expect(flushed).toEqual([{ records: [1, 2, 3], results: undefined }]);
    await bufio.stop();
  });

  it('fails the whole batch when the worker throws, and calls onError on every failed attempt', async () => {
    const onError = jest.fn();
    const bufio = new BufIO<number>({
      worker: async () => {
        throw new Error('database down');
      },
      batchSize: 10,
      retry: { maxAttempts: 3, initialDelay: 10, maxDelay: 10 },
      onError,
    });
    bufio.start();
    await bufio.push([1, 2]);
    await bufio.flush();
    await jest.advanceTimersByTimeAsync(100);
    expect(onError).toHaveBeenCalledTimes(3);
    expect(onError).toHaveBeenCalledWith(
      expect.objectContaining({ message: 'database down' }),
      [1, 2],
    );
    expect(bufio.stats()).toMatchObject({ failed: 6, retried: 4, deadLettered: 2, processed: 0 });
    await bufio.stop();
  });

  it('handles a worker that throws a non-Error value, or throws synchronously', async () => {
    const errors: Error[] = [];
    const bufio = new BufIO<number>({
      worker: () => {
        throw 'plain string';
      },
      retry: NO_RETRY,
    });
    bufio.on('deadLettered', ({ error }) => errors.push(error));
    bufio.start();
    await bufio.push(1);
    await bufio.flush();
    expect(errors[0]).toBeInstanceOf(WorkerError);
    expect(errors[0]?.message).toContain('"plain string"');
    expect((errors[0] as WorkerError).code).toBe('BUFIO_WORKER_FAILED');
    await bufio.stop();
  });

  it('fails a worker call that exceeds workTimeout, and aborts its signal', async () => {
    let signal: AbortSignal | undefined;
    const bufio = new BufIO<number>({
      worker: (_records, context) => {
        signal = context.signal;
        return new Promise<void>(() => undefined);
      },
      workTimeout: 500,
      retry: NO_RETRY,
    });
    const deadLettered: Error[] = [];
    bufio.on('deadLettered', ({ error }) => deadLettered.push(error));
    bufio.start();
    await bufio.push(1);
    const flushing = bufio.flush();
    await jest.advanceTimersByTimeAsync(499);
    expect(deadLettered).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    await flushing;
    expect(deadLettered[0]).toBeInstanceOf(WorkTimeoutError);
    expect((deadLettered[0] as WorkTimeoutError).code).toBe('BUFIO_WORK_TIMEOUT');
    expect(signal?.aborted).toBe(true);
    await bufio.stop();
  });

  it('tells the worker the buffer name and the attempt number', async () => {
    const worker = recordingWorker<number>((_records, _context, call) => {
      if (call === 1) throw new Error('first try fails');
    });
    const bufio = new BufIO<number>({
      name: 'orders',
      worker: worker.work,
      retry: { initialDelay: 10 },
    });
    bufio.start();
    await bufio.push(1);
    await bufio.flush();
    await jest.advanceTimersByTimeAsync(10);
    expect(worker.contexts.map((c) => [c.buffer, c.attempt])).toEqual([
      ['orders', 1],
      ['orders', 2],
    ]);
    await bufio.stop();
  });
});

describe('pushAndWait', () => {
  fakeTimersInEachTest();

  it("resolves each caller with its own record's result", async () => {
    const bufio = new BufIO<number, number>({
      worker: async (records) => records.map((n) => n * 10),
      batchSize: 3,
    });
    bufio.start();
    const answers = await Promise.all([
      bufio.pushAndWait(1),
      bufio.pushAndWait(2),
      bufio.pushAndWait(3),
    ]);
    expect(answers).toEqual([10, 20, 30]);
    await bufio.stop();
  });

  it('resolves with undefined when the worker gives no per-record results', async () => {
    const bufio = new BufIO<number>({ worker: async () => undefined, batchSize: 1 });
    bufio.start();
    await expect(bufio.pushAndWait(1)).resolves.toBeUndefined();
    await bufio.stop();
  });

  it('rejects with the final error when the record is dead-lettered', async () => {
    const bufio = new BufIO<number>({
      worker: async (records) => records.map((n) => (n === 2 ? new Error('bad record 2') : n)),
      batchSize: 2,
      retry: { maxAttempts: 2, initialDelay: 10 },
    });
    bufio.start();
    const one = bufio.pushAndWait(1);
    const two = bufio.pushAndWait(2);
    two.catch(() => undefined);
    await jest.advanceTimersByTimeAsync(50);
    await expect(one).resolves.toBe(1);
    await expect(two).rejects.toThrow('bad record 2');
    await bufio.stop();
  });

  it('is refused on a shared storage, where another process may take the record', async () => {
    const storage = memoryStorageAs<number>({ shared: true });
    const bufio = new BufIO<number>({ worker: async () => undefined, storage });
    await expect(bufio.pushAndWait(1)).rejects.toMatchObject({ code: 'BUFIO_UNSUPPORTED' });
  });
});
