import { describe, expect, it } from '@jest/globals';
import { StorageError, StorageUnavailableError } from '../../lib/core/errors.js';
import {
  AppendBatcher,
  type AppendBatcherOptions,
  type CallOutcome,
} from '../../lib/storages/append-batcher.js';
import { deferred } from '../support/workers.js';

const down = (): StorageUnavailableError => new StorageUnavailableError('the server is down');

/**
 * A batcher over a fake server that records every burst it is sent and gives each call ids
 * `<burst>.<n>`, unless `answer` says otherwise.
 */
function fixture(
  options: Partial<AppendBatcherOptions> = {},
  answer?: (calls: readonly (readonly string[])[], burst: number) => Promise<CallOutcome[]>,
) {
  const bursts: string[][][] = [];
  const pauses: number[] = [];
  const batcher = new AppendBatcher({
    write: async (calls) => {
      bursts.push(calls.map((texts) => [...texts]));
      if (answer) return answer(calls, bursts.length);
      let n = 0;
      return calls.map((texts) => texts.map(() => `${bursts.length}.${n++}`));
    },
    failure: (error) =>
      error instanceof StorageError || error instanceof StorageUnavailableError
        ? error
        : new StorageError(`append failed: ${(error as Error).message}`, { cause: error }),
    isUnavailable: (error) => error instanceof StorageUnavailableError,
    pause: async (retry) => {
      pauses.push(retry);
      await new Promise((resolve) => setTimeout(resolve, 5));
    },
    oneAtATime: false,
    onUnavailable: 'reject',
    unavailableTimeout: 10_000,
    ...options,
  });
  return { batcher, bursts, pauses };
}

describe('AppendBatcher', () => {
  it('writes the calls of one tick as one burst and gives each call its own ids', async () => {
    const { batcher, bursts } = fixture();
    const ids = await Promise.all([
      batcher.add(['a']),
      batcher.add(['b', 'c']),
      batcher.add(['d']),
    ]);
    expect(bursts).toEqual([[['a'], ['b', 'c'], ['d']]]);
    expect(ids).toEqual([['1.0'], ['1.1', '1.2'], ['1.3']]);
  });

  it('pipelined: each tick sends its burst without waiting for the one in flight', async () => {
    const gate = deferred();
    const { batcher, bursts } = fixture({}, async (calls, burst) => {
      if (burst === 1) await gate.promise;
      return calls.map((texts) => texts.map((t) => `${burst}:${t}`));
    });
    const first = batcher.add(['a']);
    await new Promise((resolve) => setImmediate(resolve));
    const second = batcher.add(['b']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(bursts).toEqual([[['a']], [['b']]]);
    await expect(second).resolves.toEqual(['2:b']);
    gate.resolve();
    await expect(first).resolves.toEqual(['1:a']);
  });

  it('one at a time: calls made while a burst is in flight go in the next, split between calls', async () => {
    const gate = deferred();
    const { batcher, bursts } = fixture(
      { oneAtATime: true, maxRecords: 5 },
      async (calls, burst) => {
        if (burst === 1) await gate.promise;
        return calls.map((texts) => texts.map(() => String(burst)));
      },
    );
    const first = batcher.add(['a']);
    await new Promise((resolve) => setImmediate(resolve));
    const rest = [batcher.add(['b', 'c', 'd']), batcher.add(['e', 'f', 'g']), batcher.add(['h'])];
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(bursts).toHaveLength(1);
    gate.resolve();
    await Promise.all([first, ...rest]);
    // 3 + 3 would pass maxRecords: the second call waits for the third burst, whole.
    expect(bursts).toEqual([[['a']], [['b', 'c', 'd']], [['e', 'f', 'g'], ['h']]]);
  });

  it('always takes one call, even one over the bounds, and bounds by characters too', async () => {
    const { batcher, bursts } = fixture({ oneAtATime: true, maxRecords: 2, maxChars: 4 });
    await Promise.all([batcher.add(['x', 'y', 'z']), batcher.add(['ab']), batcher.add(['cde'])]);
    expect(bursts).toEqual([[['x', 'y', 'z']], [['ab']], [['cde']]]);
  });

  it('settles each call on its own: one refused call fails alone', async () => {
    const { batcher } = fixture({}, async (calls) =>
      calls.map((texts) => (texts[0] === 'bad' ? new Error('WRONGTYPE') : ['ok'])),
    );
    const results = await Promise.allSettled([batcher.add(['good']), batcher.add(['bad'])]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: ['ok'] });
    const reason = (results[1] as PromiseRejectedResult).reason as Error;
    expect(reason).toBeInstanceOf(StorageError);
    expect(reason.message).toBe('append failed: WRONGTYPE');
  });

  it('rejects a call whose ids do not match its records, rather than resolve it wrongly', async () => {
    const { batcher } = fixture({}, async () => [['only-one']]);
    await expect(batcher.add(['a', 'b'])).rejects.toThrow(
      'append failed: the write returned 1 ids for 2 record(s)',
    );
  });

  it("with onUnavailable: 'reject', fails every call of a burst that met an unreachable server", async () => {
    const { batcher, bursts } = fixture({}, async () => {
      throw down();
    });
    const results = await Promise.allSettled([batcher.add(['a']), batcher.add(['b'])]);
    expect(results.map((r) => (r as PromiseRejectedResult).reason)).toEqual([
      expect.any(StorageUnavailableError),
      expect.any(StorageUnavailableError),
    ]);
    expect(bursts).toHaveLength(1);
  });

  it("with onUnavailable: 'block', writes again after a pause until the server is back", async () => {
    const { batcher, bursts, pauses } = fixture(
      { onUnavailable: 'block', unavailableTimeout: 5000 },
      async (calls, burst) => {
        if (burst < 3) throw down();
        return calls.map((texts) => texts.map(() => `${burst}`));
      },
    );
    await expect(Promise.all([batcher.add(['a']), batcher.add(['b'])])).resolves.toEqual([
      ['3'],
      ['3'],
    ]);
    expect(bursts).toEqual([
      [['a'], ['b']],
      [['a'], ['b']],
      [['a'], ['b']],
    ]);
    expect(pauses).toEqual([0, 1]);
  });

  it("with onUnavailable: 'block', gives up after unavailableTimeout and says so", async () => {
    const { batcher } = fixture({ onUnavailable: 'block', unavailableTimeout: 40 }, async () => {
      throw down();
    });
    const started = Date.now();
    const error = await batcher.add(['a']).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect((error as Error).message).toBe(
      "the server is down; still unavailable after waiting 40 ms (onUnavailable: 'block')",
    );
    expect((error as Error).cause).toBeInstanceOf(StorageUnavailableError);
  });

  it("with onUnavailable: 'block', does not retry a call the server refused", async () => {
    const { batcher, bursts } = fixture({ onUnavailable: 'block' }, async () => [
      new Error('NOSCRIPT'),
    ]);
    await expect(batcher.add(['a'])).rejects.toThrow('append failed: NOSCRIPT');
    expect(bursts).toHaveLength(1);
  });

  it('rejects the waiting calls when the pause itself fails', async () => {
    const { batcher } = fixture(
      {
        onUnavailable: 'block',
        pause: async () => {
          throw new StorageUnavailableError('the client has ended');
        },
      },
      async () => {
        throw down();
      },
    );
    await expect(batcher.add(['a'])).rejects.toThrow('the client has ended');
  });

  it('idle() sends what is queued at once and waits for every call', async () => {
    const { batcher, bursts } = fixture({ oneAtATime: true, maxRecords: 1 });
    const settled: string[] = [];
    const calls = ['a', 'b', 'c'].map((t) => batcher.add([t]).then(() => void settled.push(t)));
    await batcher.idle();
    expect(settled).toEqual(['a', 'b', 'c']);
    expect(bursts).toEqual([[['a']], [['b']], [['c']]]);
    await Promise.all(calls);
    await batcher.idle();
  });
});
