import { InvalidOptionsError } from '../../core/errors.js';
import { OptionChecker } from '../../core/options.js';
import type { RecoveryReport } from './recovery-report.js';
import { jsonSerializer, type Serializer } from './serializer.js';

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

/** Options of `FileStorage`. */
export interface FileStorageOptions<T> {
  /**
   * The directory that holds the journal and its lock; created (mode 0700) if missing. One
   * FileStorage at a time may use it, across processes.
   */
  directory: string;
  /** See `Durability`. Default `'fsync'`. */
  durability?: Durability;
  /**
   * A segment file is closed and a new one started once it holds this many bytes. Segments whose
   * records are all acknowledged are deleted. Default 16 MiB.
   */
  segmentBytes?: number;
  /** How records become bytes. Default: JSON (`jsonSerializer`). */
  serializer?: Serializer<T>;
  /** Largest serialized record accepted; a larger one rejects its `append`. Default 1 MiB. */
  maxRecordBytes?: number;
  /**
   * Called once the journal has been read at open, with what was replayed and what was cut off.
   * Without it, a cut is reported as a process warning.
   */
  onRecovery?: (report: RecoveryReport) => void;
}

export interface ResolvedFileStorageOptions<T> {
  readonly directory: string;
  readonly durability: Durability;
  readonly segmentBytes: number;
  readonly serializer: Serializer<T>;
  readonly maxRecordBytes: number;
  readonly onRecovery: ((report: RecoveryReport) => void) | undefined;
}

export const FILE_STORAGE_DEFAULTS = {
  durability: 'fsync',
  segmentBytes: 16 * 1024 * 1024,
  maxRecordBytes: 1024 * 1024,
} as const;

/** Segments are read whole at open: keep each within what one Buffer comfortably holds. */
const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;
const MIN_SEGMENT_BYTES = 1024;
const MAX_RECORD_BYTES = 256 * 1024 * 1024;

const KNOWN = new Set([
  'directory',
  'durability',
  'segmentBytes',
  'serializer',
  'maxRecordBytes',
  'onRecovery',
]);

/** Applies defaults and checks every option; throws `InvalidOptionsError` naming the culprit. */
export function resolveFileStorageOptions<T>(
  options: FileStorageOptions<T>,
): ResolvedFileStorageOptions<T> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('options', options, 'an object with at least "directory"');
  }
  const check: OptionChecker = new OptionChecker('FileStorage');
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) {
      check.fail(key, (options as unknown as Record<string, unknown>)[key], 'no such option');
    }
  }
  const directory: unknown = options.directory;
  if (typeof directory !== 'string' || directory.length === 0 || directory.includes('\0')) {
    check.fail('directory', directory, 'a non-empty path');
  }
  const serializer = (options.serializer ?? jsonSerializer) as Serializer<T> | null;
  if (
    serializer === null ||
    typeof serializer !== 'object' ||
    typeof serializer.serialize !== 'function' ||
    typeof serializer.deserialize !== 'function'
  ) {
    check.fail(
      'serializer',
      serializer,
      'an object with serialize(record) and deserialize(data) methods',
    );
  }
  const segmentBytes = check.integer(
    'segmentBytes',
    options.segmentBytes,
    FILE_STORAGE_DEFAULTS.segmentBytes,
    MIN_SEGMENT_BYTES,
  );
  if (segmentBytes > MAX_SEGMENT_BYTES) {
    check.fail(
      'segmentBytes',
      segmentBytes,
      `an integer from ${MIN_SEGMENT_BYTES} to ${MAX_SEGMENT_BYTES}`,
    );
  }
  const maxRecordBytes = check.integer(
    'maxRecordBytes',
    options.maxRecordBytes,
    FILE_STORAGE_DEFAULTS.maxRecordBytes,
    1,
  );
  if (maxRecordBytes > MAX_RECORD_BYTES) {
    check.fail('maxRecordBytes', maxRecordBytes, `an integer from 1 to ${MAX_RECORD_BYTES}`);
  }
  return {
    directory,
    durability: check.oneOf<Durability>('durability', options.durability, 'fsync', [
      'fsync',
      'none',
    ]),
    segmentBytes,
    serializer,
    maxRecordBytes,
    onRecovery: check.optionalFunction('onRecovery', options.onRecovery),
  };
}
