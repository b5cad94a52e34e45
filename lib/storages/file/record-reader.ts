import { asError, UnreadableRecordError } from '../../core/errors.js';
import type { ReserveOptions, StoredRecord, UnreadableRecord } from '../../core/storage.js';
import { ByteBudget } from '../byte-budget.js';
import type { Serializer } from '../serializer.js';
import { loadGroup } from './group-place.js';
import type { JournalWriter } from './journal-writer.js';
import type { LiveIndex } from './live-index.js';
import type { LiveRecord } from './live-record.js';
import type { Quarantine } from './quarantine.js';
import type { RetryGroup } from './retry-groups.js';
import type { SegmentReads } from './segment-reads.js';
import type { SegmentTable } from './segment-table.js';

export interface RecordReaderOptions<T> {
  readonly directory: string;
  readonly serializer: Serializer<T>;
  readonly index: LiveIndex;
  readonly writer: JournalWriter;
  readonly segments: SegmentTable;
  readonly reads: SegmentReads;
  readonly quarantine: Quarantine;
  /** Delivery counts of records leased when an earlier process stopped. */
  readonly deliveries: Map<number, number>;
  readonly onError: (error: Error) => void;
}

/** The batch a reserve is putting together. */
interface Picking {
  readonly limit: number;
  readonly budget: ByteBudget<LiveRecord>;
  readonly picked: LiveRecord[];
  /** `maxBytes` is reached. */
  full: boolean;
}

const sizeOf = (record: LiveRecord): number => record.bytes;

/**
 * Hands records out: picks them (due retries first, by id, then fresh records in append order),
 * reading from disk what is not in memory, reads them back with the serializer, and journals the
 * lease (a LEASE frame with each record's new delivery count) before any is handed out, so that a
 * process that dies holding them has counted the delivery. A reserve that needs no read is
 * synchronous; one that does waits for it, and reserves are answered in order. A record the
 * serializer cannot read back is set aside: its text is copied to quarantine, it is marked dead
 * in the journal, and reported (`onUnreadable`, then `onError`); the others go on.
 */
export class RecordReader<T> {
  /** A reserve waiting for the disk: the next one waits for it. */
  private pending: Promise<void> | undefined;

  constructor(private readonly options: RecordReaderOptions<T>) {}

  reserve(limit: number, options: ReserveOptions): StoredRecord<T>[] | Promise<StoredRecord<T>[]> {
    if (this.pending === undefined) return this.reserveNow(limit, options);
    const next = this.pending.then(() => this.reserveNow(limit, options));
    this.track(next);
    return next;
  }

  private reserveNow(
    limit: number,
    options: ReserveOptions,
  ): StoredRecord<T>[] | Promise<StoredRecord<T>[]> {
    const budget = new ByteBudget(options.maxBytes, sizeOf);
    const picking: Picking = { limit, budget, picked: [], full: false };
    this.options.index.retries.promote(options.now);
    let io: Promise<void> | undefined;
    try {
      io = this.pick(picking);
    } catch (error) {
      this.options.index.unlease(picking.picked);
      throw error;
    }
    if (io === undefined) return this.finish(picking, options);
    const done = this.pickAfter(io, picking).then(() => this.finish(picking, options));
    this.track(done);
    return done;
  }

  /** Makes the next reserve wait until `reserve` has settled. */
  private track(reserve: Promise<unknown>): void {
    const settled = reserve.then(
      () => undefined,
      () => undefined,
    );
    this.pending = settled;
    void settled.then(() => {
      if (this.pending === settled) this.pending = undefined;
    });
  }

  /** Keeps picking as reads complete. */
  private async pickAfter(io: Promise<void> | undefined, picking: Picking): Promise<void> {
    try {
      while (io !== undefined) {
        await io;
        io = this.pick(picking);
      }
    } catch (error) {
      this.options.index.unlease(picking.picked);
      throw error;
    }
  }

  /** Picks records while they are in memory; returns the read to wait for when one is needed. */
  private pick(picking: Picking): Promise<void> | undefined {
    const { index } = this.options;
    const { retries, fresh } = index;
    while (picking.picked.length < picking.limit && !picking.full) {
      const group = retries.top();
      if (group !== undefined) {
        if (group.records === undefined) return this.load(group);
        if (!this.fits(picking, group.records[group.next]!)) break;
        this.lease(picking, retries.take(group));
        continue;
      }
      const record = fresh.peek();
      if (record === undefined) return fresh.read();
      if (!this.fits(picking, record)) break;
      this.lease(picking, fresh.take());
    }
    fresh.prefetch();
    return undefined;
  }

  /** Counts `record` against `maxBytes` (the first always fits); once one does not, the batch is full. */
  private fits(picking: Picking, record: LiveRecord): boolean {
    if (picking.budget.fits(record, picking.picked.length)) return true;
    picking.full = true;
    return false;
  }

  private lease(picking: Picking, record: LiveRecord): void {
    this.options.index.lease(record);
    picking.picked.push(record);
  }

  private load(group: RetryGroup): Promise<void> {
    return loadGroup(group, this.options);
  }

  /** Deserializes the picked records, sets aside those that do not, and journals the lease. */
  private finish(
    picking: Picking,
    options: ReserveOptions,
  ): StoredRecord<T>[] | Promise<StoredRecord<T>[]> {
    const { serializer } = this.options;
    const picked = picking.picked;
    if (picked.length === 0) return [];
    const good: LiveRecord[] = [];
    const batch: StoredRecord<T>[] = [];
    let unreadable: { record: LiveRecord; cause: unknown }[] | undefined;
    for (const record of picked) {
      let value: T;
      try {
        value =
          record.value !== undefined ? (record.value as T) : serializer.deserialize(record.text);
      } catch (cause) {
        (unreadable ??= []).push({ record, cause });
        continue;
      }
      good.push(record);
      batch.push({
        id: record.id,
        record: value,
        attempts: record.attempts,
        deliveries: record.deliveries + 1,
      });
    }
    if (unreadable) {
      const found = unreadable;
      return this.setAside(found, picked, options).then(() => this.journalLease(good, batch));
    }
    return this.journalLease(good, batch);
  }

  /** Journals the lease of `good`; the batch is theirs once it is written. */
  private journalLease(
    good: LiveRecord[],
    batch: StoredRecord<T>[],
  ): StoredRecord<T>[] | Promise<StoredRecord<T>[]> {
    if (good.length === 0) return batch;
    const { index, writer } = this.options;
    let written: true | Promise<void>;
    try {
      written = writer.lease(leaseTriples(good));
    } catch (error) {
      index.unlease(good);
      throw error;
    }
    if (written === true) {
      for (const record of good) record.deliveries++;
      return batch;
    }
    return written.then(
      () => {
        for (const record of good) record.deliveries++;
        return batch;
      },
      (error: unknown) => {
        index.unlease(good);
        throw error;
      },
    );
  }

  /**
   * Copies unreadable records to quarantine (synced) before marking them dead; if that fails,
   * every record picked goes back and the reserve fails.
   */
  private async setAside(
    found: readonly { record: LiveRecord; cause: unknown }[],
    picked: readonly LiveRecord[],
    options: ReserveOptions,
  ): Promise<void> {
    const { index, writer, segments, quarantine } = this.options;
    let locations: string[];
    try {
      locations = await quarantine.keep(
        found.map(({ record }) => ({
          source: segments.get(record.segment)?.name ?? `segment ${record.segment}`,
          offset: record.offset,
          reason: 'unreadable',
          id: record.id,
          bytes: Buffer.from(record.text, 'utf8'),
        })),
      );
    } catch (error) {
      index.unlease([...picked]);
      throw error;
    }
    const records = found.map(({ record }) => record);
    writer.ack(index.take(records));
    const reported: UnreadableRecord[] = found.map(({ record, cause }, i) => ({
      id: record.id,
      payload: record.text,
      location: locations[i]!,
      cause,
    }));
    try {
      options.onUnreadable?.(reported);
    } catch (error) {
      this.options.onError(asError(error));
    }
    this.options.onError(
      new UnreadableRecordError(`FileStorage ${this.options.directory}`, reported),
    );
  }
}

/** (first id, count, deliveries) for runs of consecutive ids with the same next delivery count. */
function leaseTriples(records: readonly LiveRecord[]): number[] {
  const triples: number[] = [];
  let first = -1;
  let count = 0;
  let deliveries = 0;
  for (const record of records) {
    const next = record.deliveries + 1;
    if (count > 0 && record.id === first + count && next === deliveries && count < 0xffffffff) {
      count++;
      continue;
    }
    if (count > 0) triples.push(first, count, deliveries);
    first = record.id;
    count = 1;
    deliveries = next;
  }
  if (count > 0) triples.push(first, count, deliveries);
  return triples;
}
