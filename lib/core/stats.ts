import type { BufIOState } from './bufio.js';

/** Counters and timings of a buffer, from `stats()`. */
export interface BufIOStats {
  readonly name: string;
  readonly state: BufIOState;
  /** Records accepted by `push` (coalesced ones included). */
  readonly pushed: number;
  /** Records the worker processed. */
  readonly processed: number;
  /** Failed attempts, counted per record. */
  readonly failed: number;
  /** Records released for another attempt. */
  readonly retried: number;
  /** Records removed by a dropping `onFull` policy. */
  readonly dropped: number;
  /** Records that failed their last attempt or could not be drained. */
  readonly deadLettered: number;
  /** Records merged into a waiting record with the same key (`coalesce`). */
  readonly coalesced: number;
  /**
   * Records whose `push` was refused (rejected): after `stop()`, when full with `onFull: 'error'`,
   * invalid, or when the storage failed to store them. Counted (and emitted as `refused`) whether
   * or not the caller awaited the push.
   */
  readonly refused: number;
  /**
   * Stored records the storage could not read back (damaged bytes, a payload the serializer
   * refuses): set aside by the storage and reported as `UnreadableRecordError`, never processed.
   */
  readonly unreadable: number;
  /** Worker calls made. */
  readonly batches: number;
  /** Records waiting in storage, retries included, as far as this process knows. */
  readonly buffered: number;
  /** `maxBufferedRecords`: how many may wait. */
  readonly capacity: number;
  /** Records in worker calls now running. */
  readonly inFlight: number;
  /** `push` calls waiting for room (`onFull: 'block'`). */
  readonly blockedPushes: number;
  /** When the last worker call finished (epoch ms), or null. */
  readonly lastFlushAt: number | null;
  /** Mean number of records per worker call. */
  readonly meanBatchSize: number;
  /** Mean and longest worker call, in ms. */
  readonly meanWorkMs: number;
  readonly maxWorkMs: number;
}

/**
 * What happened to records so far, counted where it happens: one object, shared by the units that
 * count (a class, so that it keeps one shape). Only ever grows; `stats()` reads it.
 */
export class Counters {
  pushed = 0;
  processed = 0;
  failed = 0;
  retried = 0;
  dropped = 0;
  deadLettered = 0;
  coalesced = 0;
  refused = 0;
  unreadable = 0;
  batches = 0;
  batchRecords = 0;
  workMs = 0;
  maxWorkMs = 0;
  lastFlushAt: number | null = null;

  /** `stats()`: these counters, with what the engine knows of its state now. */
  toStats(
    now: Pick<
      BufIOStats,
      'name' | 'state' | 'buffered' | 'capacity' | 'inFlight' | 'blockedPushes'
    >,
  ): BufIOStats {
    const { batches } = this;
    return {
      ...now,
      pushed: this.pushed,
      processed: this.processed,
      failed: this.failed,
      retried: this.retried,
      dropped: this.dropped,
      deadLettered: this.deadLettered,
      coalesced: this.coalesced,
      refused: this.refused,
      unreadable: this.unreadable,
      batches,
      lastFlushAt: this.lastFlushAt,
      meanBatchSize: batches === 0 ? 0 : this.batchRecords / batches,
      meanWorkMs: batches === 0 ? 0 : this.workMs / batches,
      maxWorkMs: this.maxWorkMs,
    };
  }

  /** Counts a finished worker call of `records` records that took `durationMs`. */
  countCall(records: number, durationMs: number): void {
    this.batches++;
    this.batchRecords += records;
    this.workMs += durationMs;
    if (durationMs > this.maxWorkMs) this.maxWorkMs = durationMs;
    this.lastFlushAt = Date.now();
  }
}
