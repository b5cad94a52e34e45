import type { CutReason } from './journal-format.js';

export type { CutReason } from './journal-format.js';

/**
 * Bytes cut off a segment at open because they could not be trusted: a frame cut short
 * (`'incomplete'`, the mark of a write torn by a crash: it runs past the end of the file, or it is
 * the segment's last, crosses a 4 KiB page boundary and fails its checksum), a frame whose
 * checksum does not match, or bytes that are not a frame of this segment where one was due since
 * frames of it follow (`'checksum'`), or a frame that does not parse (`'malformed'`). Every record
 * before the cut is kept; the cut bytes are removed from the file.
 *
 * Zeros written ahead of the frames, and the frames of a reused file's earlier life, are where a
 * segment ends cleanly: they are not cut nor reported.
 */
export interface RecoveryCut {
  /** File name of the segment, within the directory. */
  readonly segment: string;
  /** Where the cut starts, in bytes from the start of the segment. */
  readonly offset: number;
  /** How many bytes were cut, to the end of the segment. */
  readonly bytes: number;
  readonly reason: CutReason;
}

/** What `FileStorage` found in its journal when it opened. */
export interface RecoveryReport {
  /** The journal directory, resolved. */
  readonly directory: string;
  /** Segment files read. */
  readonly segments: number;
  /** Records replayed as still to be processed (leased ones at a crash included). */
  readonly records: number;
  /** Of `records`, those waiting for a retry (released at least once). */
  readonly retries: number;
  /** What was cut off, one entry per damaged segment; empty when the journal was intact. */
  readonly cuts: readonly RecoveryCut[];
  /** Time taken to open, lock and replay, in ms. */
  readonly durationMs: number;
}
