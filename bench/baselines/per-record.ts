import fs from 'node:fs/promises';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { now } from '../harness.js';
import type { BenchRecord } from '../records.js';

/**
 * What an application without a buffer does: `producers` loops (concurrent requests) each take
 * the next record and `await write(record)`, one durable write per record, until the records run
 * out or `deadline` (ms, `now()` clock) passes. Returns how many were written.
 */
export async function perRecordProducers(
  records: readonly BenchRecord[],
  producers: number,
  deadline: number,
  write: (record: BenchRecord) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  let written = 0;
  const loop = async (): Promise<void> => {
    while (next < records.length && now() < deadline) {
      await write(records[next++]!);
      written++;
    }
  };
  await Promise.all(Array.from({ length: producers }, loop));
  return written;
}

/** A naive journal: append the record's JSON line, then `fdatasync`, before acknowledging. */
export function fdatasyncPerRecord(file: fs.FileHandle): (record: BenchRecord) => Promise<void> {
  return async (record) => {
    await file.write(`${JSON.stringify(record)}\n`);
    await file.datasync();
  };
}

/** One `XADD` per record, awaited, on one connection (concurrent producers share it). */
export function xaddPerRecord(
  redis: Redis,
  key: string,
): (record: BenchRecord) => Promise<unknown> {
  return (record) => redis.xadd(key, '*', 'r', JSON.stringify(record));
}

/** One `INSERT` (one commit) of the record's columns, through a pool. */
export function insertRowPerRecord(
  pool: pg.Pool,
  table: string,
): (record: BenchRecord) => Promise<unknown> {
  const text = `INSERT INTO ${table} (id, name, amount) VALUES ($1, $2, $3)`;
  return (r) => pool.query({ name: 'bench_insert_row', text, values: [r.id, r.name, r.amount] });
}

/** One `INSERT` (one commit) of the record's JSON, through a pool: what a storage table holds. */
export function insertJsonPerRecord(
  pool: pg.Pool,
  table: string,
): (record: BenchRecord) => Promise<unknown> {
  const text = `INSERT INTO ${table} (payload) VALUES ($1)`;
  return (record) =>
    pool.query({ name: 'bench_insert_json', text, values: [JSON.stringify(record)] });
}
