import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { BufIO, DeadLetterError } from '../../lib/index.js';
import { retryDelay } from '../../lib/core/retry.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';
import { recordingWorker } from '../support/workers.js';

const POLICY = { maxAttempts: 5, initialDelay: 100, maxDelay: 30_000, factor: 2 };

describe('retryDelay', () => {
  it('grows exponentially up to maxDelay, scaled by full jitter', () => {
    const top = (attempts: number): number => retryDelay(attempts, POLICY, () => 0.999999);
    expect([1, 2, 3, 4].map(top)).toEqual([99, 199, 399, 799]);
    expect(top(20)).toBe(29_999);
    expect(retryDelay(3, POLICY, () => 0)).toBe(0);
    expect(retryDelay(3, POLICY, () => 0.5)).toBe(200);
  });
});

describe('retries', () => {
  fakeTimersInEachTest();
  beforeEach(() => {
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('retries a failed batch after the backoff delay, then dead-letters after maxAttempts', async () => {
    const calls: number[] = [];
    const deadLetter = jest.fn<(records: number[], error: Error) => Promise<void>>(
      async () => undefined,
    );
    const bufio = new BufIO<number>({
      worker: async () => {
        calls.push(Date.now());
        throw new Error('still down');
      },
      retry: { maxAttempts: 4, initialDelay: 100, factor: 3 },
      deadLetter,
    });
    bufio.start();
    await bufio.push([7, 8]);
    const start = Date.now();
    await bufio.flush();
    await jest.advanceTimersByTimeAsync(10_000);
    // With random() = 0.5, the delays are half of 100, 300, 900.
    expect(calls.map((t) => t - start)).toEqual([0, 50, 200, 650]);
    expect(deadLetter).toHaveBeenCalledTimes(1);
    expect(deadLetter).toHaveBeenCalledWith(
      [7, 8],
      expect.objectContaining({ message: 'still down' }),
    );
    expect(bufio.stats()).toMatchObject({ failed: 8, retried: 6, deadLettered: 2, buffered: 0 });
    await bufio.stop();
  });

  it('reports dead letters through the deadLettered event when no handler is given', async () => {
    const events: { records: readonly number[]; error: Error }[] = [];
    const bufio = new BufIO<number>({
      worker: async () => {
        throw new Error('nope');
      },
      retry: { maxAttempts: 1 },
    });
    bufio.on('deadLettered', (event) => events.push(event));
    bufio.start();
    await bufio.push(1);
    await bufio.flush();
    expect(events).toHaveLength(1);
    expect(events[0]?.records).toEqual([1]);
    expect(bufio.stats().deadLettered).toBe(1);
    await bufio.stop();
  });

  it('emits retrying with the next attempt and the delay', async () => {
    const retrying: unknown[] = [];
    const worker = recordingWorker<number>((_r, _c, call) => {
      if (call === 1) throw new Error('once');
    });
    const bufio = new BufIO<number>({ worker: worker.work, retry: { initialDelay: 1000 } });
    bufio.on('retrying', (event) => retrying.push(event));
    bufio.start();
    await bufio.push(1);
    await bufio.flush();
    expect(retrying).toEqual([{ records: [1], attempt: 2, delay: 500 }]);
    await jest.advanceTimersByTimeAsync(500);
    expect(bufio.stats()).toMatchObject({ processed: 1, retried: 1 });
    await bufio.stop();
  });

  it('keeps the relative order of retried records and brings them back before fresh ones', async () => {
    const worker = recordingWorker<number>((records, _c, call) =>
      call === 1 ? records.map((n) => (n % 2 ? new Error('odd') : n)) : undefined,
    );
    const bufio = new BufIO<number>({
      worker: worker.work,
      batchSize: 6,
      flushInterval: 10_000,
      retry: { initialDelay: 200 },
    });
    bufio.start();
    await bufio.push([1, 2, 3, 4, 5, 6]);
    await bufio.push([7, 8]);
    await jest.advanceTimersByTimeAsync(100);
    expect(worker.batches[1]).toEqual([1, 3, 5, 7, 8]);
    await bufio.stop();
  });

  it('reports a failing deadLetter handler as an error event carrying the records', async () => {
    const errors: Error[] = [];
    const bufio = new BufIO<number>({
      worker: async () => {
        throw new Error('fail');
      },
      retry: { maxAttempts: 1 },
      deadLetter: async () => {
        throw new Error('dead letter queue unreachable');
      },
    });
    bufio.on('error', (error) => errors.push(error));
    bufio.start();
    await bufio.push([1, 2]);
    await bufio.flush();
    expect(errors[0]).toBeInstanceOf(DeadLetterError);
    expect((errors[0] as DeadLetterError<number>).records).toEqual([1, 2]);
    expect(bufio.stats().deadLettered).toBe(2);
    await bufio.stop();
  });

  it('a flush resolves after the attempt, without waiting for the retry', async () => {
    const worker = recordingWorker<number>((_r, _c, call) => {
      if (call === 1) throw new Error('first');
    });
    const bufio = new BufIO<number>({ worker: worker.work, retry: { initialDelay: 60_000 } });
    bufio.start();
    await bufio.push(1);
    await bufio.flush();
    expect(bufio.stats()).toMatchObject({ processed: 0, retried: 1, buffered: 1 });
    await jest.advanceTimersByTimeAsync(30_000);
    expect(bufio.stats().processed).toBe(1);
    await bufio.stop();
  });
});
