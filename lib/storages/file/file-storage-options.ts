import {
  DURABLE_OPTION_NAMES,
  StorageOptionChecker,
  type DurableStorageOptions,
  type ResolvedDurableOptions,
} from '../storage-options.js';
import type { RecoveryReport } from './recovery-report.js';

/**
 * When an `append` resolves:
 * - `'fsync'`: after the records are written and `fdatasync` has returned, so they survive a
 *   process crash and a power loss or kernel panic. Appends that arrive together share one write
 *   and one sync.
 * - `'none'`: after the records are written to the operating system, without waiting for the disk.
 *   They survive the process being killed, but a power loss or kernel panic may lose the last
 *   moments of appends. Faster on slow disks.
 */
export type Durability = 'fsync' | 'none';

/** Options of `FileStorage`; `serializer`, `maxRecordBytes` and `onError` as every durable storage. */
export interface FileStorageOptions<T> extends DurableStorageOptions<T> {
  /**
   * The directory that holds the journal and its lock; created (mode 0700) if missing. One
   * FileStorage at a time may use it, across processes.
   */
  directory: string;
  /** See `Durability`. Default `'fsync'`. */
  durability?: Durability;
  /**
   * A segment file is closed and a new one started once it holds this many bytes. Segments whose
   * records are all acknowledged are deleted (with `'fsync'`, up to two are kept to be reused; see
   * `FileStorage`). Default 16 MiB.
   */
  segmentBytes?: number;
  /**
   * Bound on the journal's size on disk, in bytes: the segment files and spares, as allocated.
   * An append that would take the journal past it is refused with `StorageFullError`, as on a
   * full disk, and nothing of it is written; the buffer's `onFull` policy applies, and appends are
   * accepted again once acknowledgements let old segments go (see `FileStorage.watchRoom`).
   * Acknowledgements, leases and retries are written even when the journal is full: they are
   * what frees room. At open, a budget the file system has no room for is reported to `onError`.
   * At least twice `segmentBytes`. Default: none (bounded by the disk).
   */
  maxJournalBytes?: number;
  /**
   * Bound on `quarantine.log`, where damaged bytes and unreadable records are kept: entries that
   * would take it past this many bytes start a new one, and the full one is renamed
   * `quarantine.1.log`, replacing the previous one. So the directory holds the latest quarantined
   * bytes, up to about twice this (more only when one damage is larger), and what is dropped is
   * the oldest. The bytes are only ever read by people; each damage is also reported (`onRecovery`,
   * `onError`) as it is found. At least 4096. Default 64 MiB.
   */
  maxQuarantineBytes?: number;
  /**
   * Called once the journal has been read at open, with what was recovered, what was damaged
   * (and where its bytes were kept), which segments are missing and which files were ignored.
   * Without it, anything amiss is reported to `onError`.
   */
  onRecovery?: (report: RecoveryReport) => void;
  /**
   * Use a directory that others could write into (group- or world-writable, or owned by another
   * user), which FileStorage otherwise refuses with `UnsafeDirectoryError`. The risk: whoever can
   * write there can remove or replace journal files (losing records), and plant files under the
   * names FileStorage uses. FileStorage still never follows a symbolic link there and never
   * replays a segment without its directory id, but it cannot keep records safe from someone
   * allowed to delete them. Default false.
   */
  allowUnsafeDirectory?: boolean;
}

export interface ResolvedFileStorageOptions<T> extends ResolvedDurableOptions<T> {
  readonly directory: string;
  readonly durability: Durability;
  readonly segmentBytes: number;
  readonly maxJournalBytes: number | undefined;
  readonly maxQuarantineBytes: number;
  /** Bytes of waiting records' text kept in memory as well (see `MemoryBudget`). */
  readonly memoryBytes: number;
  readonly onRecovery: ((report: RecoveryReport) => void) | undefined;
  readonly allowUnsafeDirectory: boolean;
}

export const FILE_STORAGE_DEFAULTS = {
  durability: 'fsync',
  segmentBytes: 16 * 1024 * 1024,
  memoryBytes: 1024 * 1024,
  maxQuarantineBytes: 64 * 1024 * 1024,
} as const;

/**
 * Sets how many bytes of waiting records' text a FileStorage keeps in memory as well as on disk
 * (`MemoryBudget`): for tests, with 0, every record is read back from disk. Internal; not
 * exported from the package's entry point.
 */
export const memoryBytesOption = Symbol('FileStorage.memoryBytes');

/** The options, with the internal ones. */
export type FileStorageSettings<T> = FileStorageOptions<T> & { [memoryBytesOption]?: number };

/** Segments are read whole at open: keep each within what one Buffer comfortably holds. */
const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;
const MIN_SEGMENT_BYTES = 1024;
const MAX_RECORD_BYTES = 256 * 1024 * 1024;
const MIN_QUARANTINE_BYTES = 4096;

const KNOWN = new Set<string>([
  'directory',
  'durability',
  'segmentBytes',
  'maxJournalBytes',
  'maxQuarantineBytes',
  'onRecovery',
  'allowUnsafeDirectory',
  ...DURABLE_OPTION_NAMES,
]);

/** Applies defaults and checks every option; throws `InvalidOptionsError` naming the culprit. */
export function resolveFileStorageOptions<T>(
  options: FileStorageSettings<T>,
): ResolvedFileStorageOptions<T> {
  const check: StorageOptionChecker = new StorageOptionChecker('FileStorage');
  check.known(options, KNOWN, 'an object with at least "directory"');
  const directory: unknown = options.directory;
  if (typeof directory !== 'string' || directory.length === 0 || directory.includes('\0')) {
    check.fail('directory', directory, 'a non-empty path');
  }
  const segmentBytes = check.integerIn(
    'segmentBytes',
    options.segmentBytes,
    FILE_STORAGE_DEFAULTS.segmentBytes,
    MIN_SEGMENT_BYTES,
    MAX_SEGMENT_BYTES,
  );
  const maxJournalBytes = options.maxJournalBytes;
  if (
    maxJournalBytes !== undefined &&
    (typeof maxJournalBytes !== 'number' ||
      !Number.isSafeInteger(maxJournalBytes) ||
      maxJournalBytes < 2 * segmentBytes)
  ) {
    check.fail(
      'maxJournalBytes',
      maxJournalBytes,
      `an integer of at least twice segmentBytes (${2 * segmentBytes}): the head segment and one being emptied`,
    );
  }
  return {
    directory,
    durability: check.oneOf<Durability>(
      'durability',
      options.durability,
      FILE_STORAGE_DEFAULTS.durability,
      ['fsync', 'none'],
    ),
    segmentBytes,
    maxJournalBytes,
    maxQuarantineBytes: check.integerIn(
      'maxQuarantineBytes',
      options.maxQuarantineBytes,
      FILE_STORAGE_DEFAULTS.maxQuarantineBytes,
      MIN_QUARANTINE_BYTES,
      Number.MAX_SAFE_INTEGER,
    ),
    memoryBytes: options[memoryBytesOption] ?? FILE_STORAGE_DEFAULTS.memoryBytes,
    onRecovery: check.optionalFunction('onRecovery', options.onRecovery),
    allowUnsafeDirectory: check.boolean(
      'allowUnsafeDirectory',
      options.allowUnsafeDirectory,
      false,
    ),
    ...check.durable<T>(options, MAX_RECORD_BYTES, 'what a journal segment holds comfortably'),
  };
}
