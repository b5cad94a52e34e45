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
import { idText, writeIdentity } from './directory-id.js';
import {
  encodeRecords,
  encodingOf,
  jsonSerializer,
  type EncodeOptions,
  type Serializer,
} from '../serializer.js';
import { assertSingleLane, NO_FEATURES } from '../single-lane.js';
import { reportError } from '../storage-guards.js';
import {
  resolveFileStorageOptions,
  type FileStorageOptions,
  type FileStorageSettings,
  type ResolvedFileStorageOptions,
} from './file-storage-options.js';
import { appendFrameBytes } from './journal-frames.js';
import type { LiveRecord } from './live-record.js';
import { openJournal, type OpenJournal } from './open-journal.js';
import { announceRecovery, type RecoveryReport } from './recovery-report.js';
import { classifyFileError } from './safe-files.js';

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
 * damaged header) are skipped, copied to `quarantine.log` (bounded, see `maxQuarantineBytes`) and
 * cut or covered, and every intact record before and after them is kept (records read back later
 * are checked the same way); segments missing from the middle and files that are not
 * this directory's are reported (see `recovery`). Appends are group-committed: those that arrive
 * while the disk is busy are written together and share one `fdatasync` (see `Durability`).
 * Acknowledgements and releases are journaled too, with the next write, without waiting for a
 * sync: a crash can at worst deliver a record again (at-least-once), never lose one. A released
 * record stays where it is; its new attempt count and retry time are journaled. Each reserved
 * batch is journaled before it is handed out (a lease mark), so `deliveries` counts leases across
 * crashes and restarts. Segments whose records are all acknowledged are deleted.
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
 * Waiting records wait on disk, not in memory: a few MiB of the newest are kept in memory as
 * well, so that a worker that keeps up never waits for a read, and the others are read back when
 * they are reserved, sequentially and ahead of need. Memory follows what is in flight (leased
 * records, reads ahead) and a small object per retry group, not how many records wait; a journal
 * of tens of millions of records is opened by streaming through it, one segment at a time
 * (`recovery.durationMs` says how long it took). `maxJournalBytes` bounds its size on disk.
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
  /** The encoding: the serializer, `maxRecordBytes`, and this storage's name in its errors. */
  private readonly encoding: EncodeOptions<T>;
  private state: State = 'created';
  private opening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private journal: OpenJournal<T> | undefined;
  private idFloor = 0;
  private nextId = 0;
  /** Listeners added by `watchRoom` before the journal was open. */
  private readonly roomWatchers = new Set<() => void>();

  /**
   * Checks the options; opens nothing yet.
   *
   * @throws InvalidOptionsError naming the option, the value and what is allowed.
   */
  constructor(options: FileStorageOptions<T>) {
    this.options = resolveFileStorageOptions(options as FileStorageSettings<T>);
    this.encoding = encodingOf(this.options, 'FileStorage');
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
    return this.journal?.report;
  }

  /** `file:<directory id>`, once open: names this journal's records for good. */
  get idScope(): string | undefined {
    return this.journal ? `file:${idText(this.journal.identity)}` : undefined;
  }

  /**
   * Calls `listener` when room may have been freed after an append was refused with
   * `StorageFullError` (by `maxJournalBytes` or a full disk): acknowledged records let old
   * segments go. Returns a function that stops watching. For the buffer's `onFull: 'block'`,
   * which waits for room rather than polling.
   */
  watchRoom(listener: () => void): () => void {
    this.roomWatchers.add(listener);
    const stop = this.journal?.budget.watch(listener);
    return () => {
      this.roomWatchers.delete(listener);
      stop?.();
    };
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
    const journal = this.usableJournal();
    journal.writer.ack(journal.index.take(records));
  }

  /**
   * Puts records back for a retry: their attempt count and `visibleAt` are journaled, and they
   * wait where they are (on disk) until they are due.
   */
  release(records: readonly StoredRecord<T>[], visibleAt: number): void {
    const journal = this.usableJournal();
    const group = journal.index.release(records, visibleAt);
    if (group) journal.writer.release(group);
  }

  /** Records stored and not leased; synchronous once the storage is open. */
  size(): number | Promise<number> {
    if (this.state === 'open') return (this.journal as OpenJournal<T>).index.size;
    return this.open().then(() => (this.journal as OpenJournal<T>).index.size);
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
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** See `abandonStorage`. */
  async [abandonStorage](): Promise<void> {
    this.state = 'closed';
    this.closing ??= Promise.resolve();
    await this.opening?.catch(() => undefined);
    await this.journal?.writer.abandon();
    await this.journal?.reads.close();
    this.journal?.lock.abandon();
  }

  private async openJournal(): Promise<void> {
    const journal = await openJournal(this.directory, this.options, {
      idFloor: () => this.nextId,
      reportError: (error) => this.report(error),
    });
    this.journal = journal;
    this.nextId = journal.nextId;
    this.idFloor = journal.identity.idFloor;
    for (const listener of this.roomWatchers) journal.budget.watch(listener);
    this.state = 'open';
    announceRecovery(journal.report, this.options.onRecovery, (error) => this.report(error));
    for (const warning of journal.warnings) this.report(warning);
  }

  private report(error: unknown): void {
    reportError(this.options.onError, error);
  }

  private appendOpen(records: readonly T[], texts: string[]): Promise<readonly RecordId[]> {
    // A close may have begun while this append waited for the open.
    if (this.state !== 'open') return Promise.reject(this.closedError());
    const { writer, files, budget } = this.journal as OpenJournal<T>;
    const n = texts.length;
    if (n === 0) return Promise.resolve([]);
    const live = new Array<LiveRecord>(n);
    // JSON gives back an equal record: hand the worker the one pushed (see `LiveRecord`).
    const keepValue = this.options.serializer === (jsonSerializer as Serializer<unknown>);
    let total = 0;
    const sizes = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const bytes = Buffer.byteLength(texts[i]!, 'utf8');
      sizes[i] = bytes;
      total += bytes;
    }
    if (budget.maxBytes !== undefined) {
      const full = budget.refuse(
        files.usedBytes + writer.queuedAppendBytes,
        total + n * appendFrameBytes(0),
      );
      if (full) return Promise.reject(full);
    }
    const ids = new Array<RecordId>(n);
    for (let i = 0; i < n; i++) {
      const id = this.nextId++;
      ids[i] = id;
      live[i] = {
        id,
        value: keepValue ? records[i] : undefined,
        text: texts[i]!,
        bytes: sizes[i]!,
        attempts: 0,
        deliveries: 0,
        visibleAt: 0,
        segment: 0,
        offset: 0,
        frame: 0,
        acked: false,
      };
    }
    return writer.append(live, ids, total);
  }

  private reserveOpen(
    limit: number,
    options: ReserveOptions,
  ): StoredRecord<T>[] | Promise<StoredRecord<T>[]> {
    return this.usableJournal().reader.reserve(limit, options);
  }

  /** The journal, if the storage is open and its journal has not failed. */
  private usableJournal(): OpenJournal<T> {
    const journal = this.journal;
    if (this.state !== 'open' || journal === undefined) throw this.closedError();
    const failure = journal.writer.failure;
    if (failure) throw failure;
    return journal;
  }

  private closedError(): StorageError {
    return new StorageError(
      this.state === 'created'
        ? `FileStorage "${this.directory}" is not open yet`
        : `FileStorage "${this.directory}" is closed`,
    );
  }

  private async shutdown(): Promise<void> {
    if (this.state === 'created' && this.opening === undefined) {
      this.state = 'closed';
      return;
    }
    await this.opening?.catch(() => undefined);
    this.state = 'closing';
    const journal = this.journal;
    if (journal === undefined) {
      this.state = 'closed';
      return;
    }
    try {
      if (this.nextId > this.idFloor) {
        // Ids must not start over once the last segment is gone: the floor goes first.
        try {
          await writeIdentity(journal.directory, { ...journal.identity, idFloor: this.nextId });
          this.idFloor = this.nextId;
        } catch (error) {
          await journal.writer.abandon();
          throw classifyFileError(error, journal.directory, 'record the id floor in');
        }
      }
      await journal.writer.close();
      await journal.reads.close();
    } finally {
      this.state = 'closed';
      await journal.lock.release().catch((error: unknown) => {
        throw classifyFileError(error, journal.directory, 'release the lock of');
      });
    }
  }
}
