import { Queue } from '../../core/queue.js';
import type { IdBitmap } from './id-bitmap.js';
import type { FrameVisitor } from './journal-frames.js';
import type { LiveRecord } from './live-record.js';
import type { MemoryBudget } from './memory-budget.js';
import type { Quarantine } from './quarantine.js';
import {
  claimedFrameBytes,
  damageEnd,
  unreadableBytes,
  walkFrames,
  type SegmentReads,
} from './segment-reads.js';
import type { Segment, SegmentTable } from './segment-table.js';

/** How much of a run is read at once. */
const READ_BYTES = 512 * 1024;

/** Fewer records than this read ahead, and the next read starts. */
const READ_AHEAD_RECORDS = 2048;

/**
 * Fresh records waiting on disk only: the next `remaining` APPEND frames from `offset` of
 * `segment` on (for records found at open, only those whose id is in `filter`).
 */
interface DiskRun {
  segment: number;
  /** Where reading goes on: the start of a frame. */
  offset: number;
  remaining: number;
  readonly filter: IdBitmap | undefined;
}

/** What `FreshRecords` needs besides the segments. */
export interface FreshRecordsOptions {
  readonly segments: SegmentTable;
  readonly reads: SegmentReads;
  readonly budget: MemoryBudget;
  /** Keeps bytes found damaged on the way. */
  readonly quarantine: Quarantine;
  /** Delivery counts of records leased when an earlier process stopped (see `JournalReplay`). */
  readonly deliveries: Map<number, number>;
  /** Reports records that could not be read back (damaged after the journal was opened). */
  readonly onLost: (error: Error, count: number) => void;
}

/**
 * Records never leased, in append order: those found at open (on disk), then those appended since,
 * which are kept in memory as well while `MemoryBudget` allows (the window) and otherwise only on
 * disk (spilled). Appends spill once the window is full, and keep spilling until the reader has
 * caught up with them; so the order is always: found at open, window, spilled. Records on disk
 * are read back sequentially, ahead of need, a few hundred KiB at a time.
 */
export class FreshRecords {
  private readonly window = new Queue<LiveRecord>();
  /** Found at open: read first. */
  private found: DiskRun | undefined;
  /** Spilled by appends: read once the window is empty. */
  private spilled: DiskRun | undefined;
  /** Records of the run being read, read ahead and not taken yet. */
  private readonly ahead = new Queue<LiveRecord>();
  private reading: Promise<void> | undefined;
  /** What reads land in, one after another (records take copies of their text); made at need. */
  private buffer: Buffer | undefined;
  private readError: unknown;
  private total = 0;

  constructor(private readonly options: FreshRecordsOptions) {}

  /** Fresh records waiting, wherever they are. */
  get count(): number {
    return this.total;
  }

  /** The records found at open that were never leased: `count` APPEND frames from the start. */
  addFound(segment: number, offset: number, count: number, filter: IdBitmap): void {
    if (count === 0) return;
    this.found = { segment, offset, remaining: count, filter };
    this.total += count;
  }

  /** Records just written, in append order, with where their bytes are. */
  appended(records: readonly LiveRecord[]): void {
    const { budget } = this.options;
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      if (this.spilled === undefined && budget.fits(record.bytes)) {
        this.window.push(record);
        budget.used += record.bytes;
      } else {
        this.spilled ??= {
          segment: record.segment,
          offset: record.frame,
          remaining: 0,
          filter: undefined,
        };
        this.spilled.remaining++;
      }
    }
    this.total += records.length;
  }

  /** The next fresh record, if it can be had without reading the disk. */
  peek(): LiveRecord | undefined {
    if (this.found !== undefined || this.window.length === 0) return this.ahead.peek();
    return this.window.peek();
  }

  /** Takes the record `peek` returned. */
  take(): LiveRecord {
    let record: LiveRecord;
    if (this.found === undefined && this.window.length > 0) {
      record = this.window.shift() as LiveRecord;
      this.options.budget.used -= record.bytes;
    } else {
      record = this.ahead.shift() as LiveRecord;
      this.finishTaken(this.run() as DiskRun, 1);
    }
    this.total--;
    return record;
  }

  /**
   * Reads ahead when fresh records wait on disk and few are read: resolves once some are (or the
   * run ended). Undefined when nothing is left to read.
   */
  read(): Promise<void> | undefined {
    if (this.readError !== undefined) {
      const error = this.readError;
      this.readError = undefined;
      return Promise.reject(error);
    }
    const run = this.run();
    if (run === undefined || run.remaining <= this.ahead.length) return undefined;
    this.reading ??= this.readRun(run).finally(() => (this.reading = undefined));
    return this.reading;
  }

  /** Starts reading ahead if the records read ahead run low; a failure is given to the next read. */
  prefetch(): void {
    if (this.reading !== undefined || this.ahead.length >= READ_AHEAD_RECORDS) return;
    const run = this.run();
    if (run === undefined || (run === this.spilled && this.window.length > READ_AHEAD_RECORDS)) {
      return;
    }
    this.read()?.catch((error: unknown) => (this.readError = error));
  }

  /** The oldest segment holding fresh records (Infinity for none), which must not be emptied. */
  oldestSegment(): number {
    return this.found?.segment ?? this.window.peek()?.segment ?? this.spilled?.segment ?? Infinity;
  }

  /** The run records are read from: the found one, else the spilled one once the window is empty. */
  private run(): DiskRun | undefined {
    if (this.found !== undefined) return this.found;
    return this.window.length === 0 ? this.spilled : undefined;
  }

  private finishTaken(run: DiskRun, count: number): void {
    run.remaining -= count;
    if (run.remaining > 0) return;
    if (run === this.found) this.found = undefined;
    else if (run === this.spilled) this.spilled = undefined;
  }

  /** Reads the next records of `run` into `ahead`. */
  private async readRun(run: DiskRun): Promise<void> {
    const { segments, reads } = this.options;
    const before = this.ahead.length;
    while (this.ahead.length === before && run.remaining > this.ahead.length) {
      const segment = segments.get(run.segment);
      if (segment === undefined || run.offset >= segment.end) {
        // A segment read through may be gone already: its records were all taken and acked.
        const next = segments.after(run.segment);
        if (next !== undefined) {
          run.segment = next.sequence;
          run.offset = next.kind.headerBytes;
          continue;
        }
        // Every record counted is in the frames up to the newest segment's end: some were lost.
        const where = segment ?? segments.first();
        const lost = `${run.remaining - this.ahead.length} fresh record(s)`;
        this.lose(run, unreadableBytes(where?.name ?? '(no segment)', run.offset, lost));
        return;
      }
      const length = Math.min(READ_BYTES, segment.end - run.offset);
      this.buffer ??= Buffer.allocUnsafe(READ_BYTES);
      let data = await reads.read(segment, run.offset, length, this.buffer);
      const claimed = claimedFrameBytes(data);
      if (claimed > data.length && run.offset + claimed <= segment.end) {
        // One frame larger than a read: read it whole.
        data = await reads.read(segment, run.offset, claimed);
      }
      const visitor = this.visitor(run, segment, data);
      const walk = walkFrames(data, segment.kind, visitor, () => run.remaining > this.ahead.length);
      if (walk.damaged || (walk.next === 0 && this.ahead.length === before)) {
        run.offset += walk.next;
        run.offset = await this.skipDamage(segment, run.offset);
      } else {
        run.offset += walk.next;
      }
    }
  }

  /**
   * Bytes at `offset` are not a trusted frame (damaged since they were written or checked at
   * open): copies them to quarantine, reports them, and returns where the next trusted frame is,
   * or the segment's end. The records they held are counted lost once the run ends short of them.
   */
  private async skipDamage(segment: Segment, offset: number): Promise<number> {
    const rest = await this.options.reads.read(segment, offset, segment.end - offset);
    const skipped = damageEnd(rest, 0, segment.kind);
    const [kept] = await this.options.quarantine.keep([
      {
        source: segment.name,
        offset,
        reason: 'unreadable',
        bytes: rest.subarray(0, skipped),
      },
    ]);
    this.options.onLost(
      unreadableBytes(segment.name, offset, `${skipped} byte(s) of fresh records`, kept),
      0,
    );
    return offset + Math.max(1, skipped);
  }

  /** Takes the APPEND frames of the run's records in `data` (read at `run.offset`) ahead. */
  private visitor(run: DiskRun, segment: Segment, data: Buffer): FrameVisitor {
    const { deliveries } = this.options;
    const base = run.offset;
    const ahead = this.ahead;
    return {
      append: (id, offset, bytes, frameAt) => {
        if (run.filter !== undefined && !run.filter.delete(id)) return;
        const delivered = deliveries.get(id);
        if (delivered !== undefined) deliveries.delete(id);
        ahead.push({
          id,
          value: undefined,
          text: data.toString('utf8', offset, offset + bytes),
          bytes,
          attempts: 0,
          deliveries: delivered ?? 0,
          visibleAt: 0,
          segment: segment.sequence,
          offset: base + offset,
          frame: base + frameAt,
          acked: false,
        });
      },
      carry: () => undefined,
      ack: () => undefined,
      release: () => undefined,
      lease: () => undefined,
    };
  }

  /** Gives up the rest of a run whose bytes could not be read back, and reports it. */
  private lose(run: DiskRun, error: Error): void {
    const lost = run.remaining - this.ahead.length;
    if (lost <= 0) return;
    this.total -= lost;
    this.finishTaken(run, lost);
    this.options.onLost(error, lost);
  }
}
