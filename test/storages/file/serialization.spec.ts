import { describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import {
  RecordTooLargeError,
  SerializationError,
  UnreadableRecordError,
} from '../../../lib/core/errors.js';
import type { UnreadableRecord } from '../../../lib/core/storage.js';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { T0, numbersIn, range, rec, segmentFiles, useSandbox, type Rec } from './support.js';

/*
 * FileStorage: records go through the serializer on the way in and out; what it cannot
 * serialize fails its own append, and what it cannot read back is set aside.
 */

const sandbox = useSandbox('serialization');

describe('FileStorage serialization', () => {
  it('rejects circular, BigInt and function records with SerializationError naming the cause', async () => {
    const storage = await sandbox.open<unknown>();
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
    expect(await segmentFiles(sandbox.directory)).toEqual([]);
    // And the storage works afterwards.
    await storage.append([{ n: 2 }]);
    expect(storage.size()).toBe(1);
  });

  it('a bad record fails its own append only; others in the same burst land', async () => {
    const storage = await sandbox.open<unknown>();
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
    const next = await sandbox.reopen(storage as FileStorage<Rec>);
    expect(await numbersIn(next)).toEqual([1, 4]);
  });

  it('reports a custom serializer that throws or returns something else', async () => {
    let mode: 'throw' | 'number' | 'ok' = 'throw';
    const storage = await sandbox.open<Rec>({
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
    const next = await sandbox.reopen(storage, {
      serializer: {
        serialize: (record) => `${record.n}`,
        deserialize: (text) => rec(Number(text)),
      },
    });
    expect(await numbersIn(next)).toEqual([7, 8]);
  });

  it('a record over maxRecordBytes rejects with RecordTooLargeError; one at the limit is fine', async () => {
    const storage = await sandbox.open<Rec>({ maxRecordBytes: 64 });
    const big = { n: 1, text: 'x'.repeat(100) };
    const bytes = Buffer.byteLength(JSON.stringify(big));
    const error = await storage.append([rec(0), big]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RecordTooLargeError);
    expect(error).toMatchObject({
      code: 'BUFIO_RECORD_TOO_LARGE',
      message: `record is ${bytes} bytes, over maxRecordBytes (64)`,
    });
    expect(storage.size()).toBe(0);
    expect(await segmentFiles(sandbox.directory)).toEqual([]);
    const exact = {
      n: 2,
      text: 'y'.repeat(64 - Buffer.byteLength(JSON.stringify({ n: 2, text: '' }))),
    };
    expect(Buffer.byteLength(JSON.stringify(exact))).toBe(64);
    await storage.append([exact]);
    expect(await numbersIn(storage)).toEqual([2]);
  });

  it('reserve measures maxBytes by serialized length', async () => {
    const storage = await sandbox.open<Rec>();
    await storage.append(range(0, 10).map(rec));
    const size = Buffer.byteLength(JSON.stringify(rec(0)));
    const batch = await storage.reserve(10, { now: T0, maxBytes: size * 3 });
    expect(batch.map((b) => b.record.n)).toEqual([0, 1, 2]);
    const under = await storage.reserve(10, { now: T0, maxBytes: size * 3 - 1 });
    expect(under.map((b) => b.record.n)).toEqual([3, 4]);
  });

  it('a stored record that cannot be deserialized is set aside at reserve, kept in quarantine and reported; the rest is delivered', async () => {
    const storage = await sandbox.open<Rec>();
    await storage.append([rec(0), rec(1), rec(2)]);
    await storage.close();
    const errors: Error[] = [];
    const picky = await sandbox.open<Rec>({
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
    const kept = fs.readFileSync(path.join(sandbox.directory, 'quarantine.log'), 'utf8');
    expect(kept).toContain('"reason":"unreadable","id":1');
    expect(kept).toContain(JSON.stringify(rec(1)));
    // Set aside for good: after a restart, only the two leased records come back.
    const next = await sandbox.reopen(picky as FileStorage<Rec>);
    expect(await numbersIn(next)).toEqual([0, 2]);
  });
});
