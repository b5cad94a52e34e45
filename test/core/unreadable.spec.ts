import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { BufIO, UnreadableRecordError } from '../../lib/index.js';
import { DurableState, ScriptedStorage } from '../support/scripted-storage.js';
import { range, recordingWorker } from '../support/workers.js';

afterEach(() => {
  jest.restoreAllMocks();
});

describe('records the storage cannot read back', () => {
  it('are reported as one UnreadableRecordError through onError and the error event, and counted', async () => {
    const state = new DurableState<number>();
    const storage = new ScriptedStorage(state);
    storage.append(range(0, 3));
    state.plantUnreadable(-1);
    state.plantUnreadable(-2);
    storage.append(range(3, 5));
    const onError = jest.fn<(error: Error, records: number[]) => void>();
    const errors: Error[] = [];
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({ storage, worker: worker.work, onError, flushInterval: 10 });
    bufio.on('error', (error) => errors.push(error));
    bufio.start();
    await bufio.stop();

    // The readable records around them are processed; the unreadable ones never reach the worker.
    expect(worker.processed).toEqual(range(0, 5));
    expect(onError).toHaveBeenCalledTimes(1);
    const [error, records] = onError.mock.calls[0] as [UnreadableRecordError, number[]];
    expect(records).toEqual([]);
    expect(error).toBeInstanceOf(UnreadableRecordError);
    expect(error.code).toBe('BUFIO_UNREADABLE_RECORD');
    expect(error.records.map((r) => r.location)).toEqual([
      'scripted-quarantine#4',
      'scripted-quarantine#5',
    ]);
    expect(error.message).toContain('2 stored record(s) could not be read back');
    expect(errors).toEqual([error]);
    expect(bufio.stats()).toMatchObject({ unreadable: 2, processed: 5 });
    expect(state.setAside).toEqual([4, 5]);
  });

  it('are never silent: with no error listener they become a process warning', async () => {
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const state = new DurableState<number>();
    state.plantUnreadable(-1);
    const bufio = new BufIO<number>({
      storage: new ScriptedStorage(state),
      worker: () => undefined,
      flushInterval: 10,
    });
    bufio.start();
    await bufio.stop();
    expect(warn).toHaveBeenCalledWith(expect.any(UnreadableRecordError));
    expect(bufio.stats().unreadable).toBe(1);
  });
});
