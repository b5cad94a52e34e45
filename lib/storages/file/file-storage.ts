import fs from 'node:fs/promises';
import path from 'node:path';
import { StorageError } from '../../core/errors.js';
import type {
  AppendOptions,
  RecordId,
  ReserveOptions,
  Storage,
  StorageFeatures,
  StoredRecord,
} from '../../core/storage.js';
import { encodeRecords, type EncodeOptions } from '../serializer.js';
import { assertSingleLane, NO_FEATURES } from '../single-lane.js';
import { DirectoryLock } from './directory-lock.js';
import {
  resolveFileStorageOptions,
  type FileStorageOptions,
  type ResolvedFileStorageOptions,
} from './file-storage-options.js';
import { recoverJournal } from './journal-recovery.js';
import { JournalWriter } from './journal-writer.js';
import { LiveIndex } from './live-index.js';
import type { LiveRecord } from './live-record.js';
import type { RecoveryReport } from './recovery-report.js';

/**
 * Abandons a storage as a crash would, for tests of recovery: nothing queued is written, files
 * are closed and the in-process lock is dropped, but the lock file stays. Internal; not exported
 * from the package's entry point.
 */
export const abandonStorage = Symbol('FileStorage.abandon');

type State = 'created' | 'open' | 'closing' | 'closed';

/**
 * A durable storage for one process: an append-only journal of segment files in a directory.
 *
 * Every record is framed with its length and a CRC-32, so a write torn by a crash is found when
 * the journal is read again and cut off, keeping every record before it (see `recovery`).
 * Appends are group-committed: those that arrive while the disk is busy are written together and
 * share one `fdatasync` (see `Durability`). Acknowledgements and releases (with the new attempt
 * count and retry time) are journaled too, with the next write, without waiting for a sync: a
 * crash can at worst deliver a record again (at-least-once), never lose one. Segments whose
 * records are all acknowledged are deleted.
 *
 * With `'fsync'`, appends are written into space that already exists on disk, which makes each
 * sync cheaper: a new segment is grown by zeros ahead of its records, and up to two segments whose
 * records are all acknowledged are kept as spare files (`spare-*.log`, each about `segmentBytes`)
 * and reused as later segments instead of being deleted. Spares hold no records; they stay after
 * `close()` and are reused by the next open (or removed by an open with durability `'none'`).
 *
 * Live records are also kept in memory, so `reserve` never reads the disk; memory follows the
 * number of records waiting, which the buffer's `maxBufferedRecords` bounds. The journal is read
 * only when the storage opens.
 *
 * A lock file keeps a second process, or a second instance in this process, out of the directory
 * (`StorageLockedError`); a lock left by a dead process is taken over. Files are created with mode
 * 0600, a missing directory with 0700.
 *
 * Opening reads files, so it is asynchronous: the constructor only checks options, and the first
 * call opens (or call `open()`, or use `FileStorage.open()`, to see open errors at once).
 *
 * @example
 * const storage = await FileStorage.open<Event>({ directory: '/var/lib/app/events' });
 * const buffer = new BufIO<Event>({ storage, worker: (events) => db.insertMany(events) });
 */
export class FileStorage<T> implements Storage<T> {
  readonly durable = true;
  readonly shared = false;
  /** None: one lane, no coalescing. */
  readonly features: StorageFeatures = NO_FEATURES;
  /** The journal directory, as an absolute path. */
  readonly directory: string;

  private readonly options: ResolvedFileStorageOptions<T>;
  /** How `append` serializes records, and names this storage in its errors. */
  private readonly encoding: EncodeOptions<T>;
  private state: State = 'created';
  private opening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly index = new LiveIndex<T>();
  private writer: JournalWriter<T> | undefined;
  private lock: DirectoryLock | undefined;
  private nextId = 0;
  private report: RecoveryReport | undefined;

  /**
   * Checks the options; opens nothing yet.
   *
   * @throws InvalidOptionsError naming the option, the value and what is allowed.
   */
  constructor(options: FileStorageOptions<T>) {
    this.options = resolveFileStorageOptions(options);
    this.encoding = {
      serializer: this.options.serializer,
      maxRecordBytes: this.options.maxRecordBytes,
      storageName: 'FileStorage',
    };
    this.directory = path.resolve(this.options.directory);
  }

  /** Creates a storage and opens it, so that a locked or unreadable directory fails here. */
  static async open<T>(options: FileStorageOptions<T>): Promise<FileStorage<T>> {
    const storage = new FileStorage<T>(options);
    await storage.open();
    return storage;
  }

  /** What was found in the journal at open; undefined until then. */
  get recovery(): RecoveryReport | undefined {
    return this.report;
  }

  /**
   * Creates the directory if needed, locks it and replays the journal. Called by the first
   * operation; calling it again returns the same promise. A failed open is tried again by the next
   * call.
   *
   * @throws StorageLockedError when another FileStorage holds the directory.
   * @throws SerializationError when a stored record cannot be deserialized.
   */
  open(): Promise<void> {
    if (this.state !== 'created' && this.state !== 'open')
      return Promise.reject(this.closedError());
    this.opening ??= this.openJournal().catch((error: unknown) => {
      this.opening = undefined;
      throw error;
    });
    return this.opening;
  }

  /**
   * Serializes the records and resolves with their ids once they are in the journal: written and,
   * with `durability: 'fsync'`, synced to disk.
   *
   * @throws SerializationError (as a rejection) when a record cannot be serialized; nothing of
   * this append is written.
   * @throws RecordTooLargeError (as a rejection) when a record is over `maxRecordBytes`.
   * @throws UnsupportedError (as a rejection) for a `lane` other than 0.
   */
  append(records: readonly T[], options?: AppendOptions): Promise<readonly RecordId[]> {
    let texts: string[];
    try {
      assertSingleLane('FileStorage', options);
      texts = encodeRecords(records, this.encoding);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.state === 'open') return this.appendOpen(records, texts);
    return this.open().then(() => this.appendOpen(records, texts));
  }

  /**
   * Leases records from memory (no disk read): due retries first, then fresh records in append
   * order. `maxBytes` is measured by serialized size. Synchronous once the storage is open.
   */
  reserve(limit: number, options: ReserveOptions): StoredRecord<T>[] | Promise<StoredRecord<T>[]> {
    if (this.state === 'open') return this.reserveOpen(limit, options);
    return this.open().then(() => this.reserveOpen(limit, options));
  }

  /**
   * Removes records for good. The acknowledgement is journaled with the next write and is not
   * waited for: after a crash, a record acknowledged just before may be delivered again.
   */
  ack(records: readonly StoredRecord<T>[]): void {
    const writer = this.usableWriter();
    writer.ack(this.index.take(records));
  }

  /** Puts records back for a retry; their attempt count and `visibleAt` are journaled. */
  release(records: readonly StoredRecord<T>[], visibleAt: number): void {
    const writer = this.usableWriter();
    writer.release(this.index.release(records, visibleAt), visibleAt);
  }

  /** Records stored and not leased; synchronous once the storage is open. */
  size(): number | Promise<number> {
    if (this.state === 'open') return this.index.size;
    return this.open().then(() => this.index.size);
  }

  /**
   * Opens the journal if needed and returns 0: records leased by a process that crashed are
   * visible again as soon as the journal is read.
   */
  recover(): number | Promise<number> {
    if (this.state === 'open') return 0;
    return this.open().then(() => 0);
  }

  /**
   * Writes what is queued, syncs, deletes segments left dead (or keeps them as spares, see above),
   * closes the files and releases the lock. Records not acknowledged stay in the journal for the
   * next open; a drained storage leaves no `journal-*.log` file.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  /** See `abandonStorage`. */
  async [abandonStorage](): Promise<void> {
    this.state = 'closed';
    this.closing ??= Promise.resolve();
    await this.opening?.catch(() => undefined);
    await this.writer?.abandon();
    this.lock?.abandon();
  }

  private async openJournal(): Promise<void> {
    const started = Date.now();
    const { durability, serializer } = this.options;
    const created = await fs.mkdir(this.directory, { recursive: true, mode: 0o700 });
    if (created !== undefined) await fs.chmod(this.directory, 0o700);
    const directory = await fs.realpath(this.directory);
    const lock = await DirectoryLock.acquire(directory);
    try {
      const journal = await recoverJournal(directory, serializer, durability);
      const writer = new JournalWriter<T>(
        {
          directory,
          durability,
          segmentBytes: this.options.segmentBytes,
          nextSequence: journal.nextSequence,
          spares: journal.spares,
        },
        journal.segments,
        this.index,
      );
      await writer.tidyRecovered();
      this.index.addRecovered(journal.records);
      this.nextId = journal.nextId;
      this.writer = writer;
      this.lock = lock;
      this.report = {
        directory,
        segments: journal.segmentsRead,
        records: journal.records.length,
        retries: journal.records.filter((r) => r.attempts > 0).length,
        cuts: journal.cuts,
        durationMs: Date.now() - started,
      };
    } catch (error) {
      await lock.release().catch(() => undefined);
      throw error;
    }
    this.state = 'open';
    this.announceRecovery(this.report);
  }

  private announceRecovery(report: RecoveryReport): void {
    const listener = this.options.onRecovery;
    if (listener) {
      try {
        listener(report);
      } catch (error) {
        this.reportError(
          new StorageError(
            `FileStorage onRecovery listener threw: ${error instanceof Error ? error.message : String(error)}`,
            { cause: error },
          ),
        );
      }
    } else if (report.cuts.length > 0) {
      const cuts = report.cuts
        .map((c) => `${c.bytes} byte(s) of ${c.segment} from offset ${c.offset} (${c.reason})`)
        .join('; ');
      this.reportError(
        new StorageError(`FileStorage cut damaged journal data in "${report.directory}": ${cuts}`),
      );
    }
  }

  private reportError(error: Error): void {
    try {
      this.options.onError(error);
    } catch {
      // A throwing error handler must not fail the open it reports from.
    }
  }

  private appendOpen(records: readonly T[], texts: string[]): Promise<readonly RecordId[]> {
    // A close may have begun while this append waited for the open.
    if (this.state !== 'open') return Promise.reject(this.closedError());
    const writer = this.writer as JournalWriter<T>;
    const n = records.length;
    if (n === 0) return Promise.resolve([]);
    const sizes = new Array<number>(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const bytes = Buffer.byteLength(texts[i] as string, 'utf8');
      sizes[i] = bytes;
      total += bytes;
    }
    const live = new Array<LiveRecord<T>>(n);
    const ids = new Array<RecordId>(n);
    for (let i = 0; i < n; i++) {
      const id = this.nextId++;
      ids[i] = id;
      live[i] = {
        id,
        record: records[i] as T,
        bytes: sizes[i] as number,
        attempts: 0,
        visibleAt: 0,
        segment: 0,
        offset: 0,
        acked: false,
      };
    }
    return writer.append(live, texts, ids, total);
  }

  private reserveOpen(limit: number, options: ReserveOptions): StoredRecord<T>[] {
    this.usableWriter();
    return this.index.reserve(limit, options.now, options.maxBytes);
  }

  /** The writer, if the storage is open and its journal has not failed. */
  private usableWriter(): JournalWriter<T> {
    const writer = this.writer;
    if (this.state !== 'open' || writer === undefined) throw this.closedError();
    const failure = writer.failure;
    if (failure) throw failure;
    return writer;
  }

  private closedError(): StorageError {
    return new StorageError(
      this.state === 'created'
        ? `FileStorage "${this.directory}" is not open yet`
        : `FileStorage "${this.directory}" is closed`,
    );
  }

  private async shutDown(): Promise<void> {
    if (this.state === 'created' && this.opening === undefined) {
      this.state = 'closed';
      return;
    }
    await this.opening?.catch(() => undefined);
    this.state = 'closing';
    try {
      await this.writer?.close();
    } finally {
      this.state = 'closed';
      await this.lock?.release();
    }
  }
}
