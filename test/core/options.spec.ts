import { describe, expect, it } from '@jest/globals';
import {
  BufIO,
  InvalidOptionsError,
  InvalidRecordError,
  type BufIOOptions,
} from '../../lib/index.js';

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

  it('applies the documented defaults', () => {
    const bufio = new BufIO<number>({ worker: async () => undefined });
    expect(bufio.name).toBe('default');
    expect(bufio.storage.constructor.name).toBe('MemoryStorage');
    expect(bufio.stats()).toMatchObject({ buffered: 0, pushed: 0, state: 'created' });
  });

  it('accepts a worker given as a plain function or as an object', () => {
    expect(() => new BufIO<number>({ worker: async () => undefined })).not.toThrow();
    expect(() => new BufIO<number>({ worker: { work: async () => undefined } })).not.toThrow();
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
