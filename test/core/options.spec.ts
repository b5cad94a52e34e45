import { afterEach, describe, expect, it, jest } from '@jest/globals';
import {
  BufIO,
  InvalidOptionsError,
  InvalidRecordError,
  MemoryStorage,
  type BufIOOptions,
} from '../../lib/index.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';
import { deferred, range, recordingWorker, settle } from '../support/workers.js';

function construct(options: Record<string, unknown>): () => BufIO<number> {
  return () => new BufIO<number>(options as BufIOOptions<number>);
}

describe('option validation at construction', () => {
  const cases: [string, Record<string, unknown>, string, unknown, RegExp][] = [
    ['a negative batchSize', { batchSize: -1 }, 'batchSize', -1, /an integer >= 1/],
    ['a fractional batchSize', { batchSize: 2.5 }, 'batchSize', 2.5, /an integer >= 1/],
    ['a string batchSize', { batchSize: '50' }, 'batchSize', '50', /got "50"/],
    [
      'a non-finite flushInterval',
      { flushInterval: Infinity },
      'flushInterval',
      Infinity,
      /a finite number/,
    ],
    ['a NaN flushInterval', { flushInterval: NaN }, 'flushInterval', NaN, /got NaN/],
    [
      'a worker without work',
      { worker: { process() {} } },
      'worker',
      undefined,
      /work\(records\) method/,
    ],
    ['zero concurrency', { concurrency: 0 }, 'concurrency', 0, /an integer >= 1/],
    ['an unknown onFull', { onFull: 'wait' }, 'onFull', 'wait', /one of 'block', 'drop-oldest'/],
    [
      'retry.maxAttempts of 0',
      { retry: { maxAttempts: 0 } },
      'retry.maxAttempts',
      0,
      /an integer >= 1/,
    ],
    ['retry.factor below 1', { retry: { factor: 0.5 } }, 'retry.factor', 0.5, /from 1 to/],
    [
      'a storage missing methods',
      { storage: { append() {} } },
      'storage',
      undefined,
      /missing: reserve, ack/,
    ],
    [
      'maxBufferedRecords below batchSize',
      { batchSize: 10, maxBufferedRecords: 5 },
      'maxBufferedRecords',
      5,
      /at least batchSize \(10\)/,
    ],
    ['a misspelled option', { batchsize: 10 }, 'batchsize', 10, /no such option/],
    ['a negative workTimeout', { workTimeout: -5 }, 'workTimeout', -5, /a finite number/],
    ['a non-function deadLetter', { deadLetter: 'log' }, 'deadLetter', 'log', /a function/],
    ['an empty name', { name: '' }, 'name', '', /a non-empty string/],
  ];

  it.each(cases)(
    'refuses %s, naming the option, the value and what is allowed',
    (_label, options, option, value, expected) => {
      let error: unknown;
      try {
        construct({ name: 'orders', ...options })();
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(InvalidOptionsError);
      const invalid = error as InvalidOptionsError;
      expect(invalid.code).toBe('BUFIO_INVALID_OPTIONS');
      expect(invalid.option).toBe(option);
      if (value !== undefined) expect(invalid.value).toEqual(value);
      expect(invalid.message).toMatch(expected);
      expect(invalid.message).toContain(`"${option}"`);
    },
  );

  it('names the buffer in the message', () => {
    expect(construct({ name: 'metrics', batchSize: 0 })).toThrow(
      /buffer "metrics": invalid option "batchSize": got 0/,
    );
  });

  it('accepts a worker given as a plain function or as an object, and calls either', async () => {
    const asFunction = recordingWorker<number>();
    const asObject = recordingWorker<number>();
    const buffers = [
      new BufIO<number>({ worker: asFunction.work }),
      new BufIO<number>({
        worker: { work: (records, context) => asObject.work(records, context) },
      }),
    ];
    for (const bufio of buffers) {
      bufio.start();
      await bufio.push([1, 2]);
      await bufio.stop();
    }
    expect(asFunction.batches).toEqual([[1, 2]]);
    expect(asObject.batches).toEqual([[1, 2]]);
  });
});

describe('the documented defaults', () => {
  fakeTimersInEachTest();
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('name "default", a MemoryStorage, capacity 100000, created', () => {
    const bufio = new BufIO<number>({ worker: async () => undefined });
    expect(bufio.name).toBe('default');
    expect(bufio.storage).toBeInstanceOf(MemoryStorage);
    expect(bufio.stats()).toMatchObject({
      name: 'default',
      state: 'created',
      capacity: 100_000,
      buffered: 0,
      pushed: 0,
    });
  });

  it('batchSize 100: a batch goes as soon as 100 records wait, and holds no more', async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ worker: worker.work });
    bufio.start();
    await bufio.push(range(0, 99));
    await settle();
    expect(worker.batches).toEqual([]);
    await bufio.push(range(99, 150));
    await settle();
    expect(worker.batches).toEqual([range(0, 100)]);
    await bufio.stop();
  });

  it('flushInterval 5000 ms: the oldest record waits 5 s, not less', async () => {
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ worker: worker.work });
    bufio.start();
    await bufio.push(1);
    await jest.advanceTimersByTimeAsync(4999);
    expect(worker.batches).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(worker.batches).toEqual([[1]]);
    await bufio.stop();
  });

  it("concurrency 1 and onFull 'block': one call at a time; a push beyond 100000 waits", async () => {
    const release = deferred();
    const worker = recordingWorker<number>(() => release.promise);
    const bufio = new BufIO<number>({ worker: worker.work });
    bufio.start();
    await bufio.push(range(0, 200)); // two full batches: the second waits for the first call
    await settle();
    expect(worker.batches).toHaveLength(1);
    expect(bufio.stats()).toMatchObject({ inFlight: 100, buffered: 100 });

    await bufio.push(range(200, 100_100)); // fills the buffer exactly: 100000 wait
    let admitted = false;
    const blocked = bufio.push(-1).then(() => (admitted = true));
    await settle();
    expect(bufio.stats()).toMatchObject({ buffered: 100_000, blockedPushes: 1 });
    expect(admitted).toBe(false);

    release.resolve();
    await blocked; // the first call ended and the next batch made room
    expect(bufio.stats().blockedPushes).toBe(0);
    await bufio.stop({ timeout: 0 });
  });

  it('maxBatchBytes and workTimeout: none; a batch is not cut by size, a call not by time', async () => {
    const started = deferred();
    const finish = deferred();
    const worker = recordingWorker<string>(async () => {
      started.resolve();
      await finish.promise;
    });
    const bufio = new BufIO<string>({ worker: worker.work });
    bufio.start();
    const large = range(0, 100).map((i) => `${i}`.padEnd(100_000, 'x')); // 10 MB in all
    await bufio.push(large);
    await started.promise;
    expect(worker.batches).toEqual([large]);
    await jest.advanceTimersByTimeAsync(24 * 3600_000); // a day: no timeout aborts the call
    expect(worker.contexts[0]?.signal.aborted).toBe(false);
    expect(bufio.stats()).toMatchObject({ inFlight: 100, failed: 0 });
    finish.resolve();
    await bufio.stop();
    expect(bufio.stats()).toMatchObject({ processed: 100, failed: 0 });
  });

  it('coalesce off, one lane, bisectOnError false', async () => {
    const worker = recordingWorker<{ key: string }>((_records, _context, call) => {
      if (call === 1) throw new Error('the whole batch fails once');
    });
    const bufio = new BufIO<{ key: string }>({ worker: worker.work });
    const records = [{ key: 'a' }, { key: 'a' }, { key: 'b' }, { key: 'a' }];
    await bufio.push(records); // same keys, all kept: nothing coalesces
    await expect(bufio.push({ key: 'c' }, { priority: 'high' })).rejects.toThrow(
      'invalid option "priority": got "high", expected no priority: the "priority" option is not set',
    );
    bufio.start();
    await bufio.flush();
    await jest.advanceTimersByTimeAsync(1000); // the retry falls due
    await bufio.flush();
    // The failed batch comes back whole, not in halves.
    expect(worker.batches).toEqual([records, records]);
    expect(bufio.stats()).toMatchObject({ coalesced: 0, processed: 4 });
    await bufio.stop();
  });

  it("timers: Node's timers, unref'd, so that a waiting record keeps no process alive", async () => {
    jest.useRealTimers();
    const setTimeoutSpy = jest.spyOn(globalThis, 'setTimeout');
    const bufio = new BufIO<number>({ worker: async () => undefined });
    bufio.start();
    await bufio.push(1); // arms the flush timer
    const flushTimer = setTimeoutSpy.mock.calls.findIndex(([, delay]) => delay === 5000);
    expect(flushTimer).toBeGreaterThanOrEqual(0);
    const handle = setTimeoutSpy.mock.results[flushTimer]?.value as NodeJS.Timeout;
    expect(handle.hasRef()).toBe(false);
    await bufio.stop();
  });

  it('retry: 5 attempts in all, delays drawn up to 100 ms × 2^(n−1), capped at 30000 ms', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.99999999); // each delay at its bound (floored)
    const delays = async (retry: { maxAttempts?: number }): Promise<number[]> => {
      const seen: number[] = [];
      const bufio = new BufIO<number>({
        worker: () => Promise.reject(new Error('down')),
        retry,
      });
      bufio.on('retrying', ({ delay }) => seen.push(delay));
      let deadLettered = 0;
      bufio.on('deadLettered', ({ records }) => (deadLettered += records.length));
      bufio.start();
      await bufio.push(1);
      await bufio.flush();
      while (deadLettered === 0) await jest.advanceTimersByTimeAsync(1000);
      expect(bufio.stats()).toMatchObject({ deadLettered: 1, failed: seen.length + 1 });
      await bufio.stop();
      return seen;
    };
    expect(await delays({})).toEqual([99, 199, 399, 799]); // maxAttempts 5: four retries
    // More attempts show where initialDelay (100), factor (2) and maxDelay (30000) lead.
    expect(await delays({ maxAttempts: 12 })).toEqual([
      99, 199, 399, 799, 1599, 3199, 6399, 12799, 25599, 29999, 29999,
    ]);
  });
});

describe('record validation', () => {
  it('refuses undefined, naming the buffer and the position', async () => {
    const bufio = new BufIO<number | undefined>({ name: 'events', worker: async () => undefined });
    await expect(bufio.push(undefined)).rejects.toBeInstanceOf(InvalidRecordError);
    await expect(bufio.push(undefined)).rejects.toThrow('push to buffer "events" got undefined');
    await expect(bufio.push([1, undefined])).rejects.toThrow('at index 1');
    await expect(bufio.push([])).rejects.toMatchObject({ code: 'BUFIO_INVALID_RECORD' });
    expect(bufio.stats().pushed).toBe(0);
  });

  it('accepts null and other falsy values as records', async () => {
    const seen: unknown[] = [];
    const bufio = new BufIO<unknown>({ worker: async (records) => void seen.push(...records) });
    bufio.start();
    await bufio.push([null, 0, '', false]);
    await bufio.stop();
    expect(seen).toEqual([null, 0, '', false]);
  });
});
