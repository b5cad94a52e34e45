import { UnreadableRecordError } from '../../core/errors.js';
import type { ReserveOptions, StoredRecord, UnreadableRecord } from '../../core/storage.js';
import type { Serializer } from '../serializer.js';
import type { JournalWriter } from './journal-writer.js';
import type { LiveIndex } from './live-index.js';
import type { LiveRecord } from './live-record.js';
import type { Quarantine } from './quarantine.js';
import type { SegmentTable } from './segment-table.js';

export interface RecordReaderOptions<T> {
  readonly directory: string;
  readonly serializer: Serializer<T>;
  readonly index: LiveIndex;
  readonly writer: JournalWriter;
  readonly segments: SegmentTable;
  readonly quarantine: Quarantine;
  readonly onError: (error: Error) => void;
}

/**
 * Hands records out: leases them from the index, reads them back with the serializer, and
 * journals the lease (a LEASE frame with each record's new delivery count) before any is handed
 * out, so that a process that dies holding them has counted the delivery. A record the serializer
 * cannot read back is set aside: its text is copied to quarantine, it is marked dead in the
 * journal, and reported (`onUnreadable`, then `onError`); the others go on.
 */
export class RecordReader<T> {
  constructor(private readonly options: RecordReaderOptions<T>) {}

  reserve(limit: number, options: ReserveOptions): StoredRecord<T>[] | Promise<StoredRecord<T>[]> {
    const { index, serializer } = this.options;
    const picked = index.reserve(limit, options.now, options.maxBytes);
    if (picked.length === 0) return [];
    const good: LiveRecord[] = [];
    const batch: StoredRecord<T>[] = [];
    let unreadable: { record: LiveRecord; cause: unknown }[] | undefined;
    for (const record of picked) {
      let value: T;
      try {
        value =
          record.text === undefined ? (record.value as T) : serializer.deserialize(record.text);
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
      return this.setAside(found, picked, options).then(() => this.lease(good, batch));
    }
    return this.lease(good, batch);
  }

  /** Journals the lease of `good`; the batch is theirs once it is written. */
  private lease(
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
          bytes: Buffer.from(record.text ?? '', 'utf8'),
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
      payload: record.text ?? '',
      location: locations[i] as string,
      cause,
    }));
    try {
      options.onUnreadable?.(reported);
    } catch (error) {
      this.options.onError(error instanceof Error ? error : new Error(String(error)));
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
