import { describe, expect, it, jest } from '@jest/globals';
import { BufferFullError, BufIO, RecordDroppedError } from '../../lib/index.js';
import { deferred, range, recordingWorker, settle } from '../support/workers.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

describe('backpressure (maxBufferedRecords, onFull)', () => {
  fakeTimersInEachTest();

  it("'block' (the default): push resolves once there is room, in order", async () => {
    const gate = deferred();
    const worker = recordingWorker<number>(() => gate.promise);
    const bufio = new BufIO<number>({
      worker: worker.work,
      batchSize: 2,
      maxBufferedRecords: 4,
      flushInterval: 60_000,
    });
    bufio.start();
    await bufio.push([0, 1]); // dispatched at once: in flight, no longer buffered
    await bufio.push([2, 3, 4, 5]); // fills the buffer
    const resolved: number[] = [];
    const blocked = [6, 7, 8].map((n) => bufio.push(n).then(() => resolved.push(n)));
    await settle();
    expect(resolved).toEqual([]);
    expect(bufio.stats()).toMatchObject({ buffered: 4, blockedPushes: 3 });
    gate.resolve();
    await Promise.all(blocked);
    expect(resolved).toEqual([6, 7, 8]);
    await bufio.flush();
    expect(worker.processed).toEqual(range(0, 9));
    expect(bufio.stats().dropped).toBe(0);
    await bufio.stop();
  });

  it("'error': push rejects with BufferFullError and nothing else is affected", async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({
      worker: worker.work,
      batchSize: 3,
      maxBufferedRecords: 3,
      onFull: 'error',
    });
    await bufio.push([1, 2, 3]);
    const rejection = bufio.push(4);
    await expect(rejection).rejects.toBeInstanceOf(BufferFullError);
    await expect(rejection).rejects.toMatchObject({ code: 'BUFIO_BUFFER_FULL' });
    bufio.start();
    await bufio.flush();
    expect(worker.processed).toEqual([1, 2, 3]);
    await bufio.stop();
  });

  it.each([
    {
      policy: 'drop-newest' as const,
      outcome: 'the incoming records are dropped',
      dropped: [4, 5],
      processed: [1, 2, 3],
      pushed: 3,
    },
    {
      policy: 'drop-oldest' as const,
      outcome: 'the oldest waiting records make room',
      dropped: [1, 2],
      processed: [3, 4, 5],
      pushed: 5,
    },
  ])(
    "'$policy': $outcome, counted and reported; push resolves",
    async ({ policy, dropped, processed, pushed }) => {
      const worker = recordingWorker<number>();
      const reported: unknown[] = [];
      const bufio = new BufIO<number>({
        worker: worker.work,
        batchSize: 3,
        maxBufferedRecords: 3,
        onFull: policy,
      });
      bufio.on('dropped', (event) => reported.push(event));
      await bufio.push([1, 2, 3]);
      await expect(bufio.push([4, 5])).resolves.toBeUndefined();
      expect(reported).toEqual([{ records: dropped, policy }]);
      bufio.start();
      await bufio.flush();
      expect(worker.processed).toEqual(processed);
      expect(bufio.stats()).toMatchObject({ pushed, dropped: 2, processed: 3, buffered: 0 });
      await bufio.stop();
    },
  );

  it('rejects pushAndWait callers whose records were dropped', async () => {
    const bufio = new BufIO<number>({
      worker: async () => undefined,
      batchSize: 2,
      maxBufferedRecords: 2,
      onFull: 'drop-oldest',
    });
    const first = bufio.pushAndWait(1);
    const second = bufio.pushAndWait(2);
    const third = bufio.pushAndWait(3);
    await expect(first).rejects.toBeInstanceOf(RecordDroppedError);
    bufio.start();
    await expect(second).resolves.toBeUndefined();
    await expect(third).resolves.toBeUndefined();
    await bufio.stop();
  });

  it('keeps memory bounded under a producer much faster than the worker', async () => {
    let maxBuffered = 0;
    const bufio = new BufIO<number>({
      worker: async () => {
        await new Promise((resolve) => setTimeout(resolve, 10));
      },
      batchSize: 10,
      maxBufferedRecords: 50,
      flushInterval: 5,
    });
    bufio.start();
    const producers = range(0, 4).map(async (p) => {
      for (let i = 0; i < 100; i++) {
        await bufio.push(p * 1000 + i);
        maxBuffered = Math.max(maxBuffered, bufio.stats().buffered);
      }
    });
    const all = Promise.all(producers);
    await jest.advanceTimersByTimeAsync(1000);
    await all;
    await bufio.flush();
    expect(maxBuffered).toBeLessThanOrEqual(50);
    expect(bufio.stats()).toMatchObject({ processed: 400, dropped: 0 });
    await bufio.stop();
  });
});

describe('producers that await push in a loop, never letting the event loop turn', () => {
  it('do not fill the buffer: batches keep going while they push', async () => {
    let processed = 0;
    const bufio = new BufIO<number>({
      worker: (records) => {
        processed += records.length;
      },
      batchSize: 100,
      maxBufferedRecords: 1000,
      flushInterval: 60_000,
    });
    bufio.start();
    let maxBuffered = 0;
    let maxBlocked = 0;
    // Far longer than the engine's turn budget (a few ms): batches held back for the event loop's
    // turn, which these producers never give, would fill the buffer and block them.
    for (let i = 0; i < 20_000; i++) {
      const pushed = bufio.push(i);
      const { buffered, blockedPushes } = bufio.stats();
      maxBuffered = Math.max(maxBuffered, buffered);
      maxBlocked = Math.max(maxBlocked, blockedPushes);
      await pushed;
    }
    await bufio.flush();
    expect(processed).toBe(20_000);
    expect(maxBlocked).toBe(0);
    expect(maxBuffered).toBeLessThan(1000);
    await bufio.stop();
  });
});
