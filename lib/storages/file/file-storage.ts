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
import { idText, writeIdentity, type DirectoryIdentity } from './directory-id.js';
import {
  encodeRecords,
  jsonSerializer,
  type EncodeOptions,
  type Serializer,
} from '../serializer.js';
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
import { Quarantine } from './quarantine.js';
import { describeRecovery, type RecoveryReport } from './recovery-report.js';
import { RecordReader } from './record-reader.js';
import { checkDirectory, classifyFileError } from './safe-files.js';
import { SegmentFiles } from './segment-files.js';

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
 * Every record is framed with its length, a tag of its segment and a CRC-32. Reading the journal
 * at open is salvage-first: damaged bytes anywhere (a write torn by a crash, a flipped bit, a
 * damaged header) are skipped, copied to `quarantine.log` and cut or covered, and every intact
 * record before and after them is kept; segments missing from the middle and files that are not
 * this directory's are reported (see `recovery`). Appends are group-committed: those that arrive
 * while the disk is busy are written together and share one `fdatasync` (see `Durability`).
 * Acknowledgements and releases (with the new attempt count and retry time) are journaled too,
 * with the next write, without waiting for a sync: a crash can at worst deliver a record again
 * (at-least-once), never lose one. Each reserved batch is journaled before it is handed out (a
 * lease mark), so `deliveries` counts leases across crashes and restarts. Segments whose records
 * are all acknowledged are deleted.
 *
 * A record whose text the serializer cannot read back is set aside at `reserve`: copied to
 * quarantine, marked dead in the journal, and reported (`ReserveOptions.onUnreadable` and
 * `onError`); the others are delivered. A full disk rejects appends with `StorageFullError`, and
 * the same instance accepts again once space is freed; a refused access is a
 * `StorageAccessError`.
 *
 * The directory must be this user's and not writable by others (`UnsafeDirectoryError`, unless
 * `allowUnsafeDirectory`); it is created with mode 0700 and its files with 0600, never through a
 * symbolic link. A directory id (`journal.id`, repeated in every segment header) names it:
 * segments that do not carry it are not replayed, and `idScope` is `file:<id>`, so record ids,
 * which are never reused, are keys unique across restarts.
 *
 * With `'fsync'`, appends are written into space that already exists on disk, which makes each
 * sync cheaper: a new segment is grown by zeros ahead of its records, and up to two segments whose
 * records are all acknowledged are kept as spare files (`spare-*.log`) and reused.
 *
 * Waiting records are kept in memory (see `LiveRecord`), so `reserve` never reads the disk;
 * memory follows the number of records waiting, which the buffer's `maxBufferedRecords` bounds.
 *
 * A lock file keeps a second process, or a second instance in this process, out of the directory
 * (`StorageLockedError`); a lock left by a dead process is taken over.
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
  private readonly index = new LiveIndex();
  private writer: JournalWriter | undefined;
  private reader: RecordReader<T> | undefined;
  private lock: DirectoryLock | undefined;
  private identity: DirectoryIdentity | undefined;
  private realDirectory = '';
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

  /** `file:<directory id>`, once open: names this journal's records for good. */
  get idScope(): string | undefined {
    return this.identity ? `file:${idText(this.identity)}` : undefined;
  }

  /**
   * Creates the directory if needed, checks it, locks it and replays the journal. Called by the
   * first operation; calling it again returns the same promise. A failed open is tried again by
   * the next call.
   *
   * @throws UnsafeDirectoryError for a directory others could write into.
   * @throws StorageLockedError when another FileStorage holds the directory.
   * @throws StorageAccessError, StorageFullError when the OS refuses a file operation.
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
   * @throws StorageFullError (as a rejection) while the disk is full; nothing was written.
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
   * Leases records (due retries first, then fresh records in append order), deserializes them
   * and journals the lease before handing them out. Synchronous when the lease mark can be
   * written at once; records the serializer cannot read back are set aside and reported (see
   * `FileStorage`). `maxBytes` is measured by serialized size.
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
   * Writes what is queued, syncs, records the id floor, deletes segments left dead (or keeps them
   * as spares, see above), closes the files and releases the lock. Records not acknowledged stay
   * in the journal for the next open; a drained storage leaves no `journal-*.log` file.
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
    let directory = this.directory;
    let lock: DirectoryLock | undefined;
    try {
      const created = await fs.mkdir(this.directory, { recursive: true, mode: 0o700 });
      if (created !== undefined) await fs.chmod(this.directory, 0o700);
      directory = await fs.realpath(this.directory);
      if (!this.options.allowUnsafeDirectory) await checkDirectory(directory);
      lock = await DirectoryLock.acquire(directory);
      const journal = await recoverJournal(directory);
      // The id, and the id floor, are on disk before any segment that carries them.
      await writeIdentity(directory, journal.identity);
      const files = new SegmentFiles({
        directory,
        durability: this.options.durability,
        segmentBytes: this.options.segmentBytes,
        directoryId: journal.identity.id,
        nextSequence: journal.nextSequence,
        lastSequence: journal.lastSequence,
        spares: journal.spares,
        idFloor: () => this.nextId,
      });
      const writer = new JournalWriter(
        directory,
        this.options.durability === 'fsync',
        files,
        journal.segments,
        this.index,
      );
      await writer.tidyRecovered();
      this.index.addRecovered(journal.records);
      this.nextId = journal.nextId;
      this.identity = journal.identity;
      this.realDirectory = directory;
      this.writer = writer;
      this.reader = new RecordReader<T>({
        directory,
        serializer: this.options.serializer,
        index: this.index,
        writer,
        segments: journal.segments,
        quarantine: new Quarantine(directory),
        onError: (error) => this.reportError(error),
      });
      this.lock = lock;
      this.report = { directory, ...journal.report, durationMs: Date.now() - started };
    } catch (error) {
      await lock?.release().catch(() => undefined);
      const file = (error as { path?: unknown } | null)?.path;
      throw classifyFileError(error, typeof file === 'string' ? file : directory, 'open');
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
      return;
    }
    const summary = describeRecovery(report);
    if (summary) this.reportError(new StorageError(summary));
  }

  private reportError(error: Error): void {
    try {
      this.options.onError(error);
    } catch {
      // A throwing error handler must not fail the call it reports from.
    }
  }

  private appendOpen(records: readonly T[], texts: string[]): Promise<readonly RecordId[]> {
    // A close may have begun while this append waited for the open.
    if (this.state !== 'open') return Promise.reject(this.closedError());
    const writer = this.writer as JournalWriter;
    const n = texts.length;
    if (n === 0) return Promise.resolve([]);
    const live = new Array<LiveRecord>(n);
    const ids = new Array<RecordId>(n);
    // JSON gives back an equal record: hand the worker the one pushed (see `LiveRecord`).
    const keepValue = this.options.serializer === (jsonSerializer as Serializer<unknown>);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const text = texts[i] as string;
      const bytes = Buffer.byteLength(text, 'utf8');
      const id = this.nextId++;
      total += bytes;
      ids[i] = id;
      live[i] = {
        id,
        value: keepValue ? records[i] : undefined,
        text: keepValue ? undefined : text,
        bytes,
        attempts: 0,
        deliveries: 0,
        visibleAt: 0,
        segment: 0,
        offset: 0,
        acked: false,
      };
    }
    return writer.append(live, texts, ids, total);
  }

  private reserveOpen(
    limit: number,
    options: ReserveOptions,
  ): StoredRecord<T>[] | Promise<StoredRecord<T>[]> {
    this.usableWriter();
    return (this.reader as RecordReader<T>).reserve(limit, options);
  }

  /** The writer, if the storage is open and its journal has not failed. */
  private usableWriter(): JournalWriter {
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
      const identity = this.identity;
      if (identity && this.nextId > identity.idFloor) {
        // Ids must not start over once the last segment is gone: the floor goes first.
        try {
          this.identity = { ...identity, idFloor: this.nextId };
          await writeIdentity(this.realDirectory, this.identity);
        } catch (error) {
          await this.writer?.abandon();
          throw classifyFileError(error, this.realDirectory, 'record the id floor in');
        }
      }
      await this.writer?.close();
    } finally {
      this.state = 'closed';
      await this.lock?.release().catch((error: unknown) => {
        throw classifyFileError(error, this.realDirectory, 'release the lock of');
      });
    }
  }
}
