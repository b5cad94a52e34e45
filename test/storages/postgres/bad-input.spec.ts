import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import {
  BufIO,
  InvalidOptionsError,
  RecordTooLargeError,
  SerializationError,
  StorageError,
  UnsupportedError,
  type UnreadableRecord,
} from '../../../lib/index.js';
import {
  PostgresStorage,
  type PostgresStorageOptions,
  type Serializer,
} from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import {
  adminPool,
  countRecords,
  countRows,
  dropTables,
  POSTGRES_URL,
  uniqueTable,
} from './support.js';

const describePostgres = await describeWith('postgres');

describe('PostgresStorage options', () => {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL });
  afterAll(() => pool.end());

  const cases: [string, unknown, string][] = [
    ['no connection at all', {}, 'connectionString'],
    ['both a pool and a connection string', { pool, connectionString: POSTGRES_URL }, 'pool'],
    ['a pool that is not a pool', { pool: { query: () => undefined } }, 'pool'],
    ['an empty connection string', { connectionString: ' ' }, 'connectionString'],
    ['a connection string that is not a string', { connectionString: 5432 }, 'connectionString'],
    ['poolConfig beside a pool', { pool, poolConfig: { max: 2 } }, 'poolConfig'],
    [
      'a connection string inside poolConfig',
      { connectionString: POSTGRES_URL, poolConfig: { connectionString: POSTGRES_URL } },
      'poolConfig.connectionString',
    ],
    ['a zero leaseTimeout', { connectionString: POSTGRES_URL, leaseTimeout: 0 }, 'leaseTimeout'],
    ['a NaN leaseTimeout', { connectionString: POSTGRES_URL, leaseTimeout: NaN }, 'leaseTimeout'],
    [
      'a string leaseTimeout',
      { connectionString: POSTGRES_URL, leaseTimeout: '30s' },
      'leaseTimeout',
    ],
    [
      'a zero maxRecordBytes',
      { connectionString: POSTGRES_URL, maxRecordBytes: 0 },
      'maxRecordBytes',
    ],
    [
      'a fractional maxRecordBytes',
      { connectionString: POSTGRES_URL, maxRecordBytes: 1.5 },
      'maxRecordBytes',
    ],
    [
      'a maxRecordBytes over PostgreSQL text limit',
      { connectionString: POSTGRES_URL, maxRecordBytes: 2 ** 31 },
      'maxRecordBytes',
    ],
    [
      'an unknown onUnavailable',
      { connectionString: POSTGRES_URL, onUnavailable: 'wait' },
      'onUnavailable',
    ],
    [
      'unavailableTimeout without blocking',
      { connectionString: POSTGRES_URL, unavailableTimeout: 1000 },
      'unavailableTimeout',
    ],
    [
      'a negative unavailableTimeout',
      { connectionString: POSTGRES_URL, onUnavailable: 'block', unavailableTimeout: -1 },
      'unavailableTimeout',
    ],
    [
      'a serializer without deserialize',
      { connectionString: POSTGRES_URL, serializer: { serialize: String } },
      'serializer',
    ],
    [
      'a createTable that is not a boolean',
      { connectionString: POSTGRES_URL, createTable: 'yes' },
      'createTable',
    ],
    [
      'an onError that is not a function',
      { connectionString: POSTGRES_URL, onError: 'log' },
      'onError',
    ],
    ['a misspelt option', { connectionString: POSTGRES_URL, tabel: 'events' }, 'tabel'],
  ];

  it.each(cases)('refuses %s, naming the option', (_, options, option) => {
    let caught: unknown;
    try {
      new PostgresStorage(options as PostgresStorageOptions<unknown>);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidOptionsError);
    const error = caught as InvalidOptionsError;
    expect(error.code).toBe('BUFIO_INVALID_OPTIONS');
    expect(error.option).toBe(option);
    expect(error.message).toContain(`PostgresStorage: invalid option "${option}"`);
  });

  it('refuses options that are not an object', () => {
    expect(() => new PostgresStorage(null as unknown as PostgresStorageOptions<unknown>)).toThrow(
      InvalidOptionsError,
    );
  });
});

describePostgres('PostgresStorage bad input', () => {
  let admin: pg.Pool;
  const tables: string[] = [];
  const storages: PostgresStorage<unknown>[] = [];

  beforeAll(() => {
    admin = adminPool();
  });

  afterAll(async () => {
    for (const storage of storages) await storage.close();
    await dropTables(admin, tables);
    await admin.end();
  });

  function open<T>(options: Partial<PostgresStorageOptions<T>> = {}): PostgresStorage<T> {
    const table = uniqueTable('bad');
    tables.push(table);
    const storage = new PostgresStorage<T>({
      connectionString: POSTGRES_URL,
      table,
      createTable: true,
      poolConfig: { max: 2 },
      ...options,
    });
    storages.push(storage as PostgresStorage<unknown>);
    return storage;
  }

  it('refuses records JSON cannot represent, with SerializationError, storing none of the call', async () => {
    const storage = open<unknown>();
    const circular: Record<string, unknown> = { n: 1 };
    circular.self = circular;
    await expect(storage.append([{ n: 0 }, circular])).rejects.toThrow(SerializationError);
    await expect(storage.append([{ n: 0 }, { big: 10n }])).rejects.toMatchObject({
      code: 'BUFIO_SERIALIZATION',
      message: expect.stringContaining(
        'PostgresStorage cannot serialize the record at index 1 of 2',
      ),
    });
    await expect(storage.append([() => 1])).rejects.toMatchObject({
      code: 'BUFIO_SERIALIZATION',
      message: expect.stringContaining('JSON has no form for a function'),
    });
    await expect(storage.append([Symbol('s')])).rejects.toThrow(SerializationError);
    expect(await storage.size()).toBe(0);
  });

  it('rejects the push of a non-serializable record through BufIO, and processes the others', async () => {
    const storage = open<unknown>();
    const processed: unknown[] = [];
    const bufio = new BufIO<unknown>({
      storage,
      worker: (records) => {
        processed.push(...records);
      },
      flushInterval: 20,
    });
    bufio.start();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const results = await Promise.allSettled([
      bufio.push({ ok: 1 }),
      bufio.push(circular),
      bufio.push({ ok: 2 }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(SerializationError);
    await bufio.flush();
    await bufio.stop();
    expect(processed).toEqual([{ ok: 1 }, { ok: 2 }]);
  });

  it('refuses records over maxRecordBytes with RecordTooLargeError, counting UTF-8 bytes', async () => {
    const storage = open<{ text: string }>({ maxRecordBytes: 100 });
    // {"text":"..."} is 11 bytes around the text; "é" is 2 bytes in UTF-8.
    await expect(storage.append([{ text: 'é'.repeat(44) }])).resolves.toHaveLength(1);
    const error = await storage.append([{ text: 'x' }, { text: 'é'.repeat(46) }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RecordTooLargeError);
    expect((error as RecordTooLargeError).code).toBe('BUFIO_RECORD_TOO_LARGE');
    expect((error as Error).message).toBe('record is 103 bytes, over maxRecordBytes (100)');
    expect(await storage.size()).toBe(1);
  });

  it('refuses what a custom serializer returns when PostgreSQL text cannot hold it unchanged', async () => {
    const raw: Serializer<string> = { serialize: (s) => s, deserialize: (s) => s };
    const storage = open<string>({ serializer: raw });
    await expect(storage.append(['a\u0000b'])).rejects.toMatchObject({
      code: 'BUFIO_SERIALIZATION',
      message: expect.stringContaining('NUL'),
    });
    await expect(storage.append(['\ud800'])).rejects.toMatchObject({
      code: 'BUFIO_SERIALIZATION',
      message: expect.stringContaining('surrogate'),
    });
    const numeric = open<string>({
      serializer: { serialize: () => 5 as unknown as string, deserialize: String },
    });
    await expect(numeric.append(['x'])).rejects.toMatchObject({
      code: 'BUFIO_SERIALIZATION',
      message: expect.stringContaining('the serializer returned a number, not a string'),
    });
    const throwing = open<string>({
      serializer: {
        serialize: () => {
          throw new TypeError('no way');
        },
        deserialize: String,
      },
    });
    await expect(throwing.append(['x'])).rejects.toMatchObject({
      code: 'BUFIO_SERIALIZATION',
      message: expect.stringContaining('no way'),
      cause: expect.any(TypeError),
    });
  });

  it('stores a custom serializer text as it is and gives it back', async () => {
    const csv: Serializer<[number, string]> = {
      serialize: ([n, s]) => `${n},${s}`,
      deserialize: (text) => {
        const [n, s] = text.split(',');
        return [Number(n), s as string];
      },
    };
    const storage = open<[number, string]>({ serializer: csv });
    await storage.append([
      [1, 'one'],
      [2, 'deux ü'],
    ]);
    const stored = await admin.query<{ payload: string }>(
      `SELECT payload FROM ${storage.table} ORDER BY id`,
    );
    expect(stored.rows.map((r) => r.payload)).toEqual(['1,one', '2,deux ü']);
    const batch = await storage.reserve(10, { now: Date.now() });
    expect(batch.map((e) => e.record)).toEqual([
      [1, 'one'],
      [2, 'deux ü'],
    ]);
  });

  it('sets aside a stored record it cannot deserialize, reports it, and returns the rest', async () => {
    const reported: Error[] = [];
    const picky: Serializer<string> = {
      serialize: (s) => s,
      deserialize: (s) => {
        if (s.startsWith('bad')) throw new Error(`cannot read ${s}`);
        return s;
      },
    };
    const storage = open<string>({ serializer: picky, onError: (e) => reported.push(e) });
    await storage.append(['a', 'bad1', 'b']);
    const batch = await storage.reserve(10, { now: Date.now() });
    expect(batch.map((e) => e.record)).toEqual(['a', 'b']);
    // Without onUnreadable (an engine that does not pass it), onError says what and where.
    expect(reported).toHaveLength(1);
    expect(reported[0]).toBeInstanceOf(SerializationError);
    expect(reported[0]?.message).toContain('cannot read bad1');
    expect(reported[0]?.message).toContain(storage.unreadableTable);
    await storage.ack(batch);
    // Kept for a person to look at, but neither counted nor returned nor recovered.
    expect(await storage.size()).toBe(0);
    expect(await storage.recover()).toBe(0);
    expect(await storage.reserve(10, { now: Infinity })).toEqual([]);
    const kept = await admin.query<{ payload: string; reason: string }>(
      `SELECT payload, reason FROM ${storage.unreadableTable}`,
    );
    expect(kept.rows).toEqual([{ payload: 'bad1', reason: 'cannot read bad1' }]);
    expect(await countRecords(admin, storage.table.slice(1, -1))).toBe(0);
  });

  it('hands records it cannot deserialize to onUnreadable, once, with where they are kept', async () => {
    const reported: Error[] = [];
    const picky: Serializer<string> = {
      serialize: (s) => s,
      deserialize: (s) => {
        if (s.startsWith('bad')) throw new TypeError(`cannot read ${s}`);
        return s;
      },
    };
    const storage = open<string>({ serializer: picky, onError: (e) => reported.push(e) });
    await storage.append(['bad0', 'a', 'bad1']);
    const unreadable: UnreadableRecord[] = [];
    const batch = await storage.reserve(10, {
      now: Date.now(),
      onUnreadable: (records) => unreadable.push(...records),
    });
    expect(batch.map((e) => e.record)).toEqual(['a']);
    expect(reported).toEqual([]);
    expect(unreadable.map((r) => [r.payload, (r.cause as Error).message])).toEqual([
      ['bad0', 'cannot read bad0'],
      ['bad1', 'cannot read bad1'],
    ]);
    expect(unreadable.map((r) => r.location)).toEqual(
      unreadable.map((r) => `${storage.unreadableTable} (id ${r.id})`),
    );
    // A batch of nothing but unreadable records ends its lease too.
    await storage.append(['bad2']);
    expect(
      await storage.reserve(10, { now: Date.now(), onUnreadable: (r) => unreadable.push(...r) }),
    ).toEqual([]);
    expect(unreadable).toHaveLength(3);
    await storage.ack(batch);
    const leases = await admin.query(`SELECT 1 FROM ${storage.table.slice(0, -1)}_leases"`);
    expect(leases.rowCount).toBe(0);
  });

  it('refuses append options it cannot honour', async () => {
    const storage = open<number>();
    await expect(storage.append([1], { lane: 2 })).rejects.toThrow(UnsupportedError);
    expect(await storage.size()).toBe(0);
    await expect(storage.append([1], { lane: 0 })).resolves.toHaveLength(1);
  });

  it('names the missing table and how to create it, and does not create it', async () => {
    const table = uniqueTable('missing');
    const storage = new PostgresStorage<number>({ connectionString: POSTGRES_URL, table });
    try {
      const error = await storage.append([1]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe('BUFIO_STORAGE_FAILED');
      expect((error as Error).message).toContain(`table "${table}" does not exist`);
      expect((error as Error).message).toContain('migrate()');
      await expect(storage.reserve(1, { now: Date.now() })).rejects.toThrow('does not exist');
      const found = await admin.query('SELECT 1 FROM pg_tables WHERE tablename = $1', [table]);
      expect(found.rowCount).toBe(0);
    } finally {
      await storage.close();
    }
  });

  it('refuses every operation after close with StorageError, without touching the pool', async () => {
    const storage = open<number>();
    await storage.append([1]);
    await storage.close();
    await expect(storage.append([2])).rejects.toThrow(/closed: append refused/);
    await expect(storage.reserve(1, { now: Date.now() })).rejects.toThrow(/closed/);
    await expect(storage.size()).rejects.toThrow(StorageError);
    await expect(storage.close()).resolves.toBeUndefined();
    expect(await countRows(admin, storage.table.slice(1, -1))).toBe(1);
  });
});
