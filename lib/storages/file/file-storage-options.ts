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
  readonly onRecovery: ((report: RecoveryReport) => void) | undefined;
  readonly allowUnsafeDirectory: boolean;
}

export const FILE_STORAGE_DEFAULTS = {
  durability: 'fsync',
  segmentBytes: 16 * 1024 * 1024,
} as const;

/** Segments are read whole at open: keep each within what one Buffer comfortably holds. */
const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;
const MIN_SEGMENT_BYTES = 1024;
const MAX_RECORD_BYTES = 256 * 1024 * 1024;

const KNOWN = new Set<string>([
  'directory',
  'durability',
  'segmentBytes',
  'onRecovery',
  'allowUnsafeDirectory',
  ...DURABLE_OPTION_NAMES,
]);

/** Applies defaults and checks every option; throws `InvalidOptionsError` naming the culprit. */
export function resolveFileStorageOptions<T>(
  options: FileStorageOptions<T>,
): ResolvedFileStorageOptions<T> {
  const check: StorageOptionChecker = new StorageOptionChecker('FileStorage');
  check.known(options, KNOWN, 'an object with at least "directory"');
  const directory: unknown = options.directory;
  if (typeof directory !== 'string' || directory.length === 0 || directory.includes('\0')) {
    check.fail('directory', directory, 'a non-empty path');
  }
  return {
    directory,
    durability: check.oneOf<Durability>(
      'durability',
      options.durability,
      FILE_STORAGE_DEFAULTS.durability,
      ['fsync', 'none'],
    ),
    segmentBytes: check.integerIn(
      'segmentBytes',
      options.segmentBytes,
      FILE_STORAGE_DEFAULTS.segmentBytes,
      MIN_SEGMENT_BYTES,
      MAX_SEGMENT_BYTES,
    ),
    onRecovery: check.optionalFunction('onRecovery', options.onRecovery),
    allowUnsafeDirectory: check.boolean(
      'allowUnsafeDirectory',
      options.allowUnsafeDirectory,
      false,
    ),
    ...check.durable<T>(options, MAX_RECORD_BYTES, 'what a journal segment holds comfortably'),
  };
}
