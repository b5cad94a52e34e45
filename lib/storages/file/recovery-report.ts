import { asError, StorageError } from '../../core/errors.js';
import type { DamageReason } from './segment-reader.js';

export type { DamageReason } from './segment-reader.js';

/**
 * Bytes of a segment that could not be read at open, and what was done: they were copied to the
 * quarantine file first (`quarantined` says where), then, for bytes at the end of a segment,
 * `'cut'` off the file; for bytes between frames, `'padded'` (overwritten by a frame that reading
 * skips, so the next open reads the segment cleanly); for a header, `'header-rewritten'`; or
 * `'kept'` (a copy of a segment, left as it is). Every trusted frame before and after them was
 * replayed.
 *
 * Zeros written ahead of the frames, and the frames of a reused file's earlier life, are where a
 * segment ends cleanly: they are not damage.
 */
export interface JournalDamage {
  /** File name of the segment, within the directory. */
  readonly segment: string;
  /** Where the damaged bytes start, in bytes from the start of the segment. */
  readonly offset: number;
  readonly bytes: number;
  readonly reason: DamageReason;
  readonly repair: 'cut' | 'padded' | 'header-rewritten' | 'kept';
  /** Where their copy is: `"<quarantine file> at offset <n>"`. */
  readonly quarantined: string;
}

/**
 * A file under a journal name that was not replayed: `'foreign'`, a segment of another directory
 * or a format-2 segment this directory did not hold when it was upgraded (moved to
 * `quarantine-<name>-<time>`, see `quarantined`); `'untrusted'`, a symbolic link, something that
 * is not a regular file, a file of another user or with several names (left alone, unopened or
 * unused).
 */
export interface IgnoredFile {
  readonly file: string;
  readonly reason: 'foreign' | 'untrusted';
  readonly detail: string;
  readonly quarantined?: string;
}

/** What `FileStorage` found in its journal when it opened. */
export interface RecoveryReport {
  /** The journal directory, resolved. */
  readonly directory: string;
  /** The directory's id (hex), from `journal.id`; `idScope` is `file:<directoryId>`. */
  readonly directoryId: string;
  /** Segment files read. */
  readonly segments: number;
  /** Records recovered: replayed as still to be processed (leased ones at a crash included). */
  readonly records: number;
  /** Of `records`, those waiting for a retry (released at least once). */
  readonly retries: number;
  /** Trusted frames replayed. */
  readonly framesRecovered: number;
  /** Damaged stretches skipped (each one frame or more); see `damage`. */
  readonly framesSkipped: number;
  /** Bytes copied or moved to quarantine: damaged stretches, and foreign files. */
  readonly bytesQuarantined: number;
  /** Segments missing from the middle of the sequence (deleted or lost), by name. */
  readonly missing: readonly string[];
  /** `missing.length`. */
  readonly segmentsMissing: number;
  readonly damage: readonly JournalDamage[];
  readonly ignored: readonly IgnoredFile[];
  /**
   * What happened to the id file: `'created'` (a new directory, or one written by BufIO 0.2.0:
   * its format-2 segments are read as they are and replaced as they empty), `'rebuilt'` (missing
   * or damaged, taken back from the segment headers), or `'read'`.
   */
  readonly identity: 'created' | 'rebuilt' | 'read';
  /** Format-2 segments (BufIO 0.2.0) read. */
  readonly legacySegments: number;
  /** Bytes of the journal's files once open (segments and spares, as allocated on disk). */
  readonly journalBytes: number;
  /** Bytes free on the directory's file system at open (`statfs`, for an unprivileged user). */
  readonly freeBytes: number;
  /** Time taken to open, lock and replay, in ms. */
  readonly durationMs: number;
}

/** One message for `onError` about what an open found amiss, or undefined when nothing was. */
export function describeRecovery(report: RecoveryReport): string | undefined {
  const parts: string[] = [];
  for (const d of report.damage) {
    parts.push(
      `${d.bytes} damaged byte(s) of ${d.segment} at offset ${d.offset} (${d.reason}), ${d.repair}, kept in ${d.quarantined}`,
    );
  }
  if (report.missing.length > 0) {
    parts.push(`segment(s) missing from the sequence: ${report.missing.join(', ')}`);
  }
  for (const file of report.ignored) {
    const where = file.quarantined ? `, moved to ${file.quarantined}` : '';
    parts.push(`${file.file} ignored (${file.reason}: ${file.detail}${where})`);
  }
  if (report.identity === 'rebuilt')
    parts.push('the id file was missing or damaged and was rebuilt');
  if (parts.length === 0) return undefined;
  return `FileStorage found damage in journal "${report.directory}": ${parts.join('; ')}`;
}

/**
 * Hands what an open found to `onRecovery`, or, without it, anything amiss to `onError`; a
 * throwing listener is reported too.
 */
export function announceRecovery(
  report: RecoveryReport,
  onRecovery: ((report: RecoveryReport) => void) | undefined,
  onError: (error: Error) => void,
): void {
  if (onRecovery) {
    try {
      onRecovery(report);
    } catch (error) {
      onError(
        new StorageError(`FileStorage onRecovery listener threw: ${asError(error).message}`, {
          cause: error,
        }),
      );
    }
    return;
  }
  const summary = describeRecovery(report);
  if (summary) onError(new StorageError(summary));
}
