import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { EventEmitter, on, once } from 'node:events';
import { BufIO, type BufIOEvents, MemoryStorage } from '../../lib/index.js';
import { deferred, range } from '../support/workers.js';

afterEach(() => {
  jest.restoreAllMocks();
});

/** A MemoryStorage whose close() fails, as a storage losing its connection at shutdown would. */
class FailingClose<T> extends MemoryStorage<T> {
  override close(): void {
    throw new Error('connection lost while closing');
  }
}

describe('BufIO as an EventEmitter', () => {
  it('is a Node EventEmitter: on, once, off, prependListener, listenerCount behave as Node', async () => {
    const bufio = new BufIO<number>({ worker: () => undefined, batchSize: 2 });
    expect(bufio).toBeInstanceOf(EventEmitter);
    const order: string[] = [];
    const second = (): void => {
      order.push('second');
    };
    bufio.on('flushed', second);
    bufio.prependListener('flushed', () => order.push('first'));
    bufio.once('flushed', () => order.push('once'));
    expect(bufio.listenerCount('flushed')).toBe(3);
    bufio.start();
    await bufio.push([1, 2]);
    await bufio.flush();
    expect(order).toEqual(['first', 'second', 'once']);
    expect(bufio.listenerCount('flushed')).toBe(2);
    bufio.off('flushed', second);
    expect(bufio.listeners('flushed')).not.toContain(second);
    expect(bufio.listenerCount('flushed')).toBe(1);
    bufio.removeAllListeners('flushed');
    expect(bufio.listenerCount('flushed')).toBe(0);
    expect(bufio.eventNames()).toEqual([]);
    await bufio.stop();
  });

  it('works with events.once and events.on', async () => {
    const bufio = new BufIO<number>({ worker: () => undefined, batchSize: 2 });
    bufio.start();
    const batches: (readonly number[])[] = [];
    const iterating = (async () => {
      for await (const [payload] of on(bufio, 'flushed') as AsyncIterable<
        [BufIOEvents<number>['flushed']]
      >) {
        batches.push(payload.records);
        if (batches.length === 2) break;
      }
    })();
    const drained = once(bufio, 'drained');
    await bufio.push(range(0, 4));
    await iterating;
    expect(batches).toEqual([
      [0, 1],
      [2, 3],
    ]);
    await bufio.stop();
    const [summary] = (await drained) as [BufIOEvents<number>['drained']];
    expect(summary).toMatchObject({ processed: 0, timedOut: false });
    // Both helpers took their listeners back.
    expect(bufio.listenerCount('flushed')).toBe(0);
    expect(bufio.listenerCount('error')).toBe(0);
  });

  it('after events.once(buffer, "drained"), a later storage error reaches the error listeners intact', async () => {
    const call = deferred();
    const bufio = new BufIO<number>({
      storage: new FailingClose<number>(),
      worker: () => call.promise,
    });
    const errors: Error[] = [];
    const warn = jest.spyOn(process, 'emitWarning');
    bufio.start();
    await bufio.push(1);
    void bufio.flush();
    const drained = once(bufio, 'drained');
    // The call outlives the drain: the storage is closed once it settles, after 'drained'.
    const summary = await bufio.stop({ timeout: 10 });
    expect(summary.inFlight).toBe(1);
    await drained;
    bufio.on('error', (error) => errors.push(error));
    call.resolve();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(errors.map((e) => e.message)).toEqual(['connection lost while closing']);
    // events.once took its own error listener back (it could not on a look-alike emitter).
    expect(bufio.listenerCount('error')).toBe(1);
    expect(warn).not.toHaveBeenCalled();
  });

  it('reports an error with no listener through process.emitWarning, never by throwing', async () => {
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const bufio = new BufIO<number>({
      storage: new FailingClose<number>(),
      worker: () => undefined,
    });
    bufio.start();
    await bufio.stop();
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({ message: 'connection lost while closing' }),
    );
  });

  it('survives listeners that throw or reject: the others run, the engine goes on, the error is reported', async () => {
    const errors: Error[] = [];
    const seen: number[] = [];
    const bufio = new BufIO<number>({ worker: () => undefined, batchSize: 2 });
    bufio.on('error', (error) => errors.push(error));
    bufio.on('flushed', () => {
      throw new Error('listener bug');
    });
    bufio.on('flushed', async () => {
      throw new Error('async listener bug');
    });
    bufio.on('flushed', ({ records }) => {
      seen.push(...records);
    });
    bufio.start();
    await bufio.push(range(0, 6));
    await bufio.flush();
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(range(0, 6));
    expect(bufio.stats().processed).toBe(6);
    expect(errors.map((e) => e.message).sort()).toEqual([
      ...Array<string>(3).fill('async listener bug'),
      ...Array<string>(3).fill('listener bug'),
    ]);
    await bufio.stop();
  });
});
