import { afterEach, describe, expect, it, jest } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { BufIO } from '../../../lib/index.js';
import {
  InvalidOptionsError,
  RecordTooLargeError,
  SerializationError,
  StorageError,
  UnreadableRecordError,
} from '../../../lib/core/errors.js';
import type { UnreadableRecord } from '../../../lib/core/storage.js';
import { FileStorage, type FileStorageOptions } from '../../../lib/storages/file/index.js';
import { waitFor } from '../../support/wait.js';
import { lockFiles, removeDir, segmentFiles, tempDir } from './support.js';

interface Rec {
  readonly n: number;
  readonly text: string;
}

const rec = (n: number): Rec => ({ n, text: `record ${n}` });
const T0 = 1_700_000_000_000;
const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from }, (_, i) => from + i);

let directory = '';
const opened: FileStorage<unknown>[] = [];

afterEach(async () => {
  jest.restoreAllMocks();
  for (const storage of opened.splice(0)) await storage.close();
  if (directory) await removeDir(directory);
  directory = '';
});

async function openStorage<T = Rec>(
  options: Omit<FileStorageOptions<T>, 'directory'> = {},
): Promise<FileStorage<T>> {
  directory ||= await tempDir('storage');
  const storage = await FileStorage.open<T>({ ...options, directory });
  opened.push(storage as FileStorage<unknown>);
  return storage;
}

async function numbersIn(storage: FileStorage<Rec>): Promise<number[]> {
  const batch = await storage.reserve(100_000, { now: Infinity });
  await storage.release(batch, 0);
  return batch.map((entry) => entry.record.n);
}

/** Closes `storage` and opens the same directory again. */
async function reopen<T>(
  storage: FileStorage<T>,
  options: Omit<FileStorageOptions<T>, 'directory'> = {},
): Promise<FileStorage<T>> {
  await storage.close();
  return openStorage<T>(options);
}

const mode = (file: string): number => fs.statSync(file).mode & 0o777;

describe('FileStorage', () => {
  it('declares itself durable and not shared', async () => {
    const storage = new FileStorage<Rec>({ directory: '/nonexistent/never-opened' });
    expect(storage.durable).toBe(true);
    expect(storage.shared).toBe(false);
    expect(storage.directory).toBe('/nonexistent/never-opened');
    await storage.close();
  });

  describe('options', () => {
    const cases: [string, unknown, string, string][] = [
      ['a missing directory', {}, 'directory', 'undefined'],
      ['an empty directory', { directory: '' }, 'directory', '""'],
      ['a non-string directory', { directory: 42 }, 'directory', '42'],
      ['an unknown durability', { directory: 'd', durability: 'always' }, 'durability', '"always"'],
      ['a tiny segmentBytes', { directory: 'd', segmentBytes: 100 }, 'segmentBytes', '100'],
      [
        'a fractional segmentBytes',
        { directory: 'd', segmentBytes: 4096.5 },
        'segmentBytes',
        '4096.5',
      ],
      [
        'a huge segmentBytes',
        { directory: 'd', segmentBytes: 2 ** 40 },
        'segmentBytes',
        String(2 ** 40),
      ],
      ['a zero maxRecordBytes', { directory: 'd', maxRecordBytes: 0 }, 'maxRecordBytes', '0'],
      [
        'a serializer without deserialize',
        { directory: 'd', serializer: { serialize: String } },
        'serializer',
        '',
      ],
      ['a non-function onRecovery', { directory: 'd', onRecovery: 'yes' }, 'onRecovery', '"yes"'],
      ['an unknown option', { directory: 'd', dir: '/tmp' }, 'dir', '"/tmp"'],
    ];
    it.each(cases)('refuses %s with InvalidOptionsError', (_label, options, option, value) => {
      let error: unknown;
      try {
        new FileStorage(options as FileStorageOptions<Rec>);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error).toMatchObject({ code: 'BUFIO_INVALID_OPTIONS', option });
      expect((error as Error).message).toContain(
        `FileStorage: invalid option "${option}": got ${value}`,
      );
    });

    it('refuses a missing options object', () => {
      expect(() => new FileStorage(undefined as unknown as FileStorageOptions<Rec>)).toThrow(
        /invalid option "options": got undefined, expected an object/,
      );
    });
  });

  describe('serialization', () => {
    it('rejects circular, BigInt and function records with SerializationError naming the cause', async () => {
      const storage = await openStorage<unknown>();
      const circular: Record<string, unknown> = { n: 1 };
      circular.self = circular;
      await expect(storage.append([circular])).rejects.toMatchObject({
        code: 'BUFIO_SERIALIZATION',
        message: expect.stringMatching(/cannot serialize the record: .*circular/i),
      });
      await expect(storage.append([{ n: 10n }])).rejects.toMatchObject({
        code: 'BUFIO_SERIALIZATION',
        message: expect.stringMatching(/BigInt/),
      });
      await expect(storage.append([() => 1])).rejects.toMatchObject({
        code: 'BUFIO_SERIALIZATION',
        message: 'FileStorage cannot serialize the record: JSON has no form for a function',
      });
      await expect(storage.append([{ n: 3, later: () => 1 }])).rejects.toMatchObject({
        code: 'BUFIO_SERIALIZATION',
        message: expect.stringContaining('JSON has no form for a function (at .later)'),
      });
      await expect(storage.append([undefined])).rejects.toThrow(SerializationError);
      expect(storage.size()).toBe(0);
      // Nothing was written: the journal has no segment yet.
      expect(await segmentFiles(directory)).toEqual([]);
      // And the storage works afterwards.
      await storage.append([{ n: 2 }]);
      expect(storage.size()).toBe(1);
    });

    it('a bad record fails its own append only; others in the same burst land', async () => {
      const storage = await openStorage<unknown>();
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      const results = await Promise.allSettled([
        storage.append([rec(1)]),
        storage.append([rec(2), circular, rec(3)]),
        storage.append([rec(4)]),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      const failure = (results[1] as PromiseRejectedResult).reason as Error;
      expect(failure).toBeInstanceOf(SerializationError);
      expect(failure.message).toContain('FileStorage cannot serialize the record at index 1 of 3');
      expect(storage.size()).toBe(2);
      const next = await reopen(storage as FileStorage<Rec>);
      expect(await numbersIn(next)).toEqual([1, 4]);
    });

    it('reports a custom serializer that throws or returns something else', async () => {
      let mode: 'throw' | 'number' | 'ok' = 'throw';
      const storage = await openStorage<Rec>({
        serializer: {
          serialize: (record) => {
            if (mode === 'throw') throw new TypeError('no way');
            if (mode === 'number') return 42 as unknown as string;
            return `${record.n}`;
          },
          deserialize: (text) => rec(Number(text)),
        },
      });
      const thrown = storage.append([rec(1)]);
      await expect(thrown).rejects.toMatchObject({
        code: 'BUFIO_SERIALIZATION',
        message: 'FileStorage cannot serialize the record: no way',
      });
      await expect(thrown.catch((e: Error) => e.cause)).resolves.toBeInstanceOf(TypeError);
      mode = 'number';
      await expect(storage.append([rec(1)])).rejects.toThrow(
        'the serializer returned a number, not a string',
      );
      mode = 'ok';
      await storage.append([rec(7), rec(8)]);
      const next = await reopen(storage, {
        serializer: {
          serialize: (record) => `${record.n}`,
          deserialize: (text) => rec(Number(text)),
        },
      });
      expect(await numbersIn(next)).toEqual([7, 8]);
    });

    it('a record over maxRecordBytes rejects with RecordTooLargeError; one at the limit is fine', async () => {
      const storage = await openStorage<Rec>({ maxRecordBytes: 64 });
      const big = { n: 1, text: 'x'.repeat(100) };
      const bytes = Buffer.byteLength(JSON.stringify(big));
      const error = await storage.append([rec(0), big]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RecordTooLargeError);
      expect(error).toMatchObject({
        code: 'BUFIO_RECORD_TOO_LARGE',
        message: `record is ${bytes} bytes, over maxRecordBytes (64)`,
      });
      expect(storage.size()).toBe(0);
      expect(await segmentFiles(directory)).toEqual([]);
      const exact = {
        n: 2,
        text: 'y'.repeat(64 - Buffer.byteLength(JSON.stringify({ n: 2, text: '' }))),
      };
      expect(Buffer.byteLength(JSON.stringify(exact))).toBe(64);
      await storage.append([exact]);
      expect(await numbersIn(storage)).toEqual([2]);
    });

    it('reserve measures maxBytes by serialized length', async () => {
      const storage = await openStorage<Rec>();
      await storage.append(range(0, 10).map(rec));
      const size = Buffer.byteLength(JSON.stringify(rec(0)));
      const batch = await storage.reserve(10, { now: T0, maxBytes: size * 3 });
      expect(batch.map((b) => b.record.n)).toEqual([0, 1, 2]);
      const under = await storage.reserve(10, { now: T0, maxBytes: size * 3 - 1 });
      expect(under.map((b) => b.record.n)).toEqual([3, 4]);
    });

    it('a stored record that cannot be deserialized is set aside at reserve, kept in quarantine and reported; the rest is delivered', async () => {
      const storage = await openStorage<Rec>();
      await storage.append([rec(0), rec(1), rec(2)]);
      await storage.close();
      const errors: Error[] = [];
      const picky = await openStorage<Rec>({
        onError: (error) => errors.push(error),
        serializer: {
          serialize: JSON.stringify,
          deserialize: (text) => {
            const record = JSON.parse(text) as Rec;
            if (record.n === 1) throw new Error('unexpected shape');
            return record;
          },
        },
      });
      expect(picky.size()).toBe(3);
      const reported: UnreadableRecord[] = [];
      const batch = await picky.reserve(10, {
        now: T0,
        onUnreadable: (records) => reported.push(...records),
      });
      expect(batch.map((entry) => entry.record.n)).toEqual([0, 2]);
      expect(reported).toEqual([
        {
          id: 1,
          payload: JSON.stringify(rec(1)),
          location: expect.stringMatching(/quarantine\.log at offset 0$/),
          cause: new Error('unexpected shape'),
        },
      ]);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(UnreadableRecordError);
      expect(picky.size()).toBe(0);
      const kept = fs.readFileSync(path.join(directory, 'quarantine.log'), 'utf8');
      expect(kept).toContain('"reason":"unreadable","id":1');
      expect(kept).toContain(JSON.stringify(rec(1)));
      // Set aside for good: after a restart, only the two leased records come back.
      const next = await reopen(picky as FileStorage<Rec>);
      expect(await numbersIn(next)).toEqual([0, 2]);
    });
  });

  describe('group commit', () => {
    it('one write and one fdatasync for a burst of concurrent appends', async () => {
      const storage = await openStorage<Rec>();
      await storage.append([rec(0)]); // creates the segment
      const syncs = jest.spyOn(fs, 'fdatasync');
      const writes = jest.spyOn(fs, 'writeSync');
      const asyncWrites = jest.spyOn(fs, 'write');
      const ids = await Promise.all(range(1, 201).map((n) => storage.append([rec(n)])));
      expect(syncs).toHaveBeenCalledTimes(1);
      expect(writes.mock.calls.length + asyncWrites.mock.calls.length).toBe(1);
      expect(new Set(ids.flat()).size).toBe(200);
      expect(storage.size()).toBe(201);
    });

    it('appends arriving during a sync are written together and share the next sync', async () => {
      const storage = await openStorage<Rec>();
      await storage.append([rec(0)]);
      const realSync = fs.fdatasync;
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      let calls = 0;
      jest.spyOn(fs, 'fdatasync').mockImplementation((fd, callback) => {
        calls++;
        if (calls === 1) void gate.then(() => realSync(fd, callback));
        else realSync(fd, callback);
      });
      const writes = jest.spyOn(fs, 'writeSync');
      let firstDone = false;
      const first = storage.append([rec(1)]).then(() => (firstDone = true));
      await waitFor('the first sync', () => calls === 1);
      const during = range(2, 52).map((n) => storage.append([rec(n)]));
      await new Promise((resolve) => setTimeout(resolve, 30));
      // The first append waits for its sync; nothing else is written or synced meanwhile.
      expect(firstDone).toBe(false);
      expect(calls).toBe(1);
      expect(writes).toHaveBeenCalledTimes(1);
      open();
      await first;
      await Promise.all(during);
      expect(calls).toBe(2);
      expect(writes).toHaveBeenCalledTimes(2);
      expect(await numbersIn(storage)).toEqual(range(0, 52));
    });

    it('a large backlog is written in bursts of a few MiB, in order', async () => {
      const storage = await openStorage<Rec>({ segmentBytes: 8 * 1024 * 1024 });
      await storage.append([rec(0)]);
      const writes = jest.spyOn(fs, 'write');
      const syncs = jest.spyOn(fs, 'fdatasync');
      const big = 'z'.repeat(200_000);
      await Promise.all(range(1, 51).map((n) => storage.append([{ n, text: big }])));
      // 10 MB queued at once: three bursts of at most 4 MiB, each synced.
      const lengths = writes.mock.calls.map((call) => (call as unknown[])[3] as number);
      const bursts = lengths.filter((n) => n > 1e6);
      expect(bursts).toHaveLength(3);
      for (const length of bursts) expect(length).toBeLessThanOrEqual(4 * 1024 * 1024);
      expect(syncs.mock.calls.length).toBeGreaterThanOrEqual(3);
      const next = await reopen(storage);
      expect(await numbersIn(next)).toEqual(range(0, 51));
    });

    it("durability 'none' resolves appends without fdatasync", async () => {
      const storage = await openStorage<Rec>({ durability: 'none' });
      await storage.append([rec(0)]);
      const syncs = jest.spyOn(fs, 'fdatasync');
      for (let n = 1; n <= 20; n++) await storage.append([rec(n)]);
      await Promise.all(range(21, 100).map((n) => storage.append([rec(n)])));
      expect(syncs).not.toHaveBeenCalled();
      const next = await reopen(storage);
      expect(await numbersIn(next)).toEqual(range(0, 100));
    });

    it('an I/O failure rejects the burst, leaves it out of the journal, and stops the storage', async () => {
      const storage = await openStorage<Rec>();
      await storage.append([rec(0)]);
      jest.spyOn(fs, 'fdatasync').mockImplementationOnce((_fd, callback) => {
        callback(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      });
      const failure = await storage.append([rec(1)]).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(StorageError);
      expect((failure as Error).message).toMatch(/journal in ".*" failed .*EIO/);
      await expect(storage.append([rec(2)])).rejects.toBe(failure);
      expect(() => storage.reserve(1, { now: T0 })).toThrow(failure as Error);
      await storage.close();
      opened.splice(0);
      const next = await openStorage<Rec>();
      expect(await numbersIn(next)).toEqual([0]);
    });
  });

  describe('segments', () => {
    it('rotates at segmentBytes and deletes segments once every record is acknowledged, after a sync', async () => {
      const storage = await openStorage<Rec>({ durability: 'none', segmentBytes: 1024 });
      for (let n = 0; n < 60; n++) await storage.append([rec(n)]);
      const before = await segmentFiles(directory);
      expect(before.length).toBeGreaterThanOrEqual(3);
      for (const name of before) {
        expect(fs.statSync(path.join(directory, name)).size).toBeLessThanOrEqual(1024);
      }
      const events: string[] = [];
      const realSync = fs.fdatasync;
      jest.spyOn(fs, 'fdatasync').mockImplementation((fd, callback) => {
        events.push('sync');
        realSync(fd, callback);
      });
      const realUnlink = fs.promises.unlink;
      jest.spyOn(fs.promises, 'unlink').mockImplementation((file) => {
        events.push(`unlink ${path.basename(String(file))}`);
        return realUnlink(file);
      });
      const batch = await storage.reserve(1000, { now: T0 });
      await storage.ack(batch);
      await waitFor(
        'acknowledged segments to be deleted',
        async () => (await segmentFiles(directory)).length === 1,
      );
      // The acknowledgements were synced before the first segment went.
      expect(events[0]).toBe('sync');
      // Oldest first: every segment but the head, which may be a new one.
      const after = await segmentFiles(directory);
      expect(after).toHaveLength(1);
      expect(events.filter((e) => e.startsWith('unlink journal-'))).toEqual(
        before.filter((name) => !after.includes(name)).map((name) => `unlink ${name}`),
      );
      expect(before.filter((name) => !after.includes(name)).length).toBeGreaterThanOrEqual(2);
      // A clean close of an empty storage leaves no segment at all.
      await storage.close();
      expect(await segmentFiles(directory)).toEqual([]);
    });

    it('copies a straggler forward so its old segment can go; it keeps its attempts and retry time', async () => {
      const storage = await openStorage<Rec>({ segmentBytes: 1024 });
      for (let n = 0; n < 80; n++) await storage.append([rec(n)]);
      const segments = (await segmentFiles(directory)).length;
      expect(segments).toBeGreaterThanOrEqual(4);
      const batch = await storage.reserve(1000, { now: T0 });
      await storage.release(batch.slice(0, 1), T0 + 60_000);
      await storage.ack(batch.slice(1));
      await waitFor(
        'the straggler to be carried and old segments deleted',
        async () => (await segmentFiles(directory)).length === 1,
      );
      const next = await reopen(storage);
      expect(next.recovery).toMatchObject({ records: 1, retries: 1, segments: 1 });
      expect(await next.reserve(10, { now: T0 + 59_999 })).toEqual([]);
      const retry = await next.reserve(10, { now: T0 + 60_000 });
      expect(retry.map((r) => [r.record, r.attempts])).toEqual([[rec(0), 1]]);
    });

    it('refuses a journal written by another format version, without touching it', async () => {
      directory = await tempDir('storage');
      const file = path.join(directory, 'journal-000000000001.log');
      // Version 1: 8-byte header, frames without a tag.
      const bytes = Buffer.concat([Buffer.from('BUFIOJ\x01\x00', 'latin1'), Buffer.alloc(60, 7)]);
      fs.writeFileSync(file, bytes);
      const storage = new FileStorage<Rec>({ directory });
      await expect(storage.open()).rejects.toMatchObject({
        code: 'BUFIO_STORAGE_FAILED',
        message: expect.stringContaining('journal format version 1, this version reads 3'),
      });
      expect(fs.readFileSync(file).equals(bytes)).toBe(true);
    });
  });

  describe('files', () => {
    it('creates the directory 0700 and the journal and lock files 0600', async () => {
      const parent = await tempDir('modes');
      directory = parent;
      const nested = path.join(parent, 'app', 'buffer');
      const storage = new FileStorage<Rec>({ directory: nested });
      opened.push(storage as FileStorage<unknown>);
      await storage.append([rec(1)]);
      expect(mode(nested)).toBe(0o700);
      const journal = await segmentFiles(nested);
      const locks = await lockFiles(nested);
      expect(journal).toHaveLength(1);
      expect(locks).toHaveLength(1);
      for (const name of [...journal, ...locks]) expect(mode(path.join(nested, name))).toBe(0o600);
      await storage.close();
      const after = await lockFiles(nested);
      expect(after).toHaveLength(1);
      expect(mode(path.join(nested, after[0] as string))).toBe(0o600);
    });

    it('close flushes queued acknowledgements and releases; calls after close fail clearly', async () => {
      const storage = await openStorage<Rec>();
      await storage.append(range(0, 5).map(rec));
      const batch = await storage.reserve(5, { now: T0 });
      await storage.ack(batch.slice(0, 2));
      await storage.release(batch.slice(2), T0 + 5);
      await storage.close();
      await expect(storage.append([rec(9)])).rejects.toMatchObject({
        code: 'BUFIO_STORAGE_FAILED',
        message: expect.stringContaining('is closed'),
      });
      expect(() => storage.ack(batch)).toThrow(/is closed/);
      await storage.close(); // twice is fine
      const next = await openStorage<Rec>();
      const again = await next.reserve(10, { now: T0 + 5 });
      expect(again.map((r) => [r.record.n, r.attempts])).toEqual([
        [2, 1],
        [3, 1],
        [4, 1],
      ]);
    });

    it('opens lazily: the first operation opens the journal', async () => {
      directory = await tempDir('storage');
      const storage = new FileStorage<Rec>({ directory });
      opened.push(storage as FileStorage<unknown>);
      expect(storage.recovery).toBeUndefined();
      expect(await storage.size()).toBe(0);
      expect(storage.recovery).toMatchObject({ records: 0, damage: [], identity: 'created' });
    });
  });

  describe('with BufIO', () => {
    it('records and their retry state survive a restart of the buffer', async () => {
      directory = await tempDir('bufio');
      const first = new BufIO<Rec>({
        storage: new FileStorage<Rec>({ directory }),
        batchSize: 10,
        flushInterval: 5,
        retry: { maxAttempts: 5, initialDelay: 30, maxDelay: 30 },
        worker: () => {
          throw new Error('not today');
        },
      });
      first.start();
      await first.push(range(0, 10).map(rec));
      await first.flush();
      const summary = await first.stop({ timeout: 0 });
      expect(summary.remaining).toBe(10);

      const seen: { n: number; attempt: number }[] = [];
      const second = new BufIO<Rec>({
        storage: new FileStorage<Rec>({ directory }),
        batchSize: 10,
        flushInterval: 5,
        worker: (records, { attempt }) => {
          for (const r of records) seen.push({ n: r.n, attempt });
        },
      });
      second.start();
      await waitFor('the second buffer to process the records', () => seen.length >= 10);
      await second.stop();
      expect(seen.map((s) => s.n)).toEqual(range(0, 10));
      expect(seen.every((s) => s.attempt >= 2)).toBe(true);
      const check = await openStorage<Rec>();
      expect(check.size()).toBe(0);
    });
  });
});
