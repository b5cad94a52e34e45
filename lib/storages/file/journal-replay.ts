import { IdBitmap } from './id-bitmap.js';
import type { SegmentKind } from './journal-format.js';
import { replayFrame, type CarriedState, type FrameVisitor } from './journal-frames.js';
import { STEP_MS, yieldToEventLoop } from './segment-reader.js';

/**
 * Records waiting for the same retry time whose copies lie in one segment, from `start` to `end`
 * (with other frames between them, perhaps): a retry group, read back when due.
 */
export interface FoundGroup {
  readonly visibleAt: number;
  /** The lowest id. */
  firstId: number;
  count: number;
  /** Payload bytes. */
  bytes: number;
  readonly segment: number;
  start: number;
  readonly end: number;
  /** (first id, count, attempts, deliveries) runs, in id order once `finish` has run. */
  runs: number[];
}

/** What a segment held, as replayed. */
export interface ReplayedSegment {
  /** Records whose newest copy is in it and that are not acknowledged. */
  readonly live: number;
  /** Records written to it (APPEND and CARRY frames). */
  readonly written: number;
}

/** Ids a RELEASE frame released together, newer than their copies, whose copies are sought. */
interface PendingRun {
  readonly first: number;
  readonly count: number;
  readonly attempts: number;
  readonly visibleAt: number;
  /** Ids of the run whose copy is still to be found. */
  left: number;
}

/** Pending runs are found by id through buckets of this many ids. */
const BUCKET_IDS = 1024;

/** Copies of a group further apart than this make two groups (two reads, rather than one long). */
const MAX_GAP_BYTES = 256 * 1024;

/**
 * Rebuilds what waits in a journal from its trusted frames, newest first: segments from the
 * newest to the oldest, each one's frames from its last to its first. A record's fate is then
 * settled by the first copy or acknowledgement met, and every older frame naming it is stale; so
 * what must be remembered per record is one bit (`IdBitmap`), and the records themselves are not
 * read into memory:
 *
 * - an APPEND frame of a record not settled, and not released, is a fresh record (`fresh`);
 * - a record released for a retry stays where it is, and a RELEASE frame (newer than its copy)
 *   gives its attempts and retry time: the frame's ids are kept as runs, as few as the releases,
 *   until their copies are met; those copies make retry groups (`groups`), read back when due;
 * - CARRY frames (records copied out of a mostly dead segment, with their state) make groups too;
 * - a LEASE frame newer than a record's copy and release is a lease that ended without ack or
 *   release (a crash): its delivery count is kept (`deliveries`), for the few records it concerns.
 *
 * Every field a frame sets is absolute, so a frame replayed twice (a duplicated segment) changes
 * nothing.
 */
export class JournalReplay {
  /** Records whose fate is settled: a newer copy or an acknowledgement was met. */
  private readonly settled = new IdBitmap();
  /** Fresh records (never released), by id; they are read back in append order. */
  readonly fresh = new IdBitmap();
  /** The oldest fresh record's frame (segment, offset), where reading them back starts. */
  freshSegment = -1;
  freshOffset = 0;
  /** Deliveries of records leased after their newest copy and release, by id. */
  readonly deliveries = new Map<number, number>();
  readonly groups: FoundGroup[] = [];
  /** Of the records found, those released at least once. */
  retries = 0;
  private readonly pending = new Map<number, PendingRun[]>();
  /** The RELEASE frame's entries being gathered into a run. */
  private releasing:
    { first: number; count: number; attempts: number; visibleAt: number } | undefined;
  /** Groups being gathered in this segment, by the run (or, for CARRY frames, none) they come from. */
  private readonly building = new Map<PendingRun | undefined, FoundGroup>();
  private maxId = -1;

  // The frame being replayed.
  private sequence = 0;
  private at = 0;
  private end = 0;
  private live = 0;
  private written = 0;

  private readonly visitor: FrameVisitor = {
    append: (id, _offset, bytes) => this.copy(id, bytes, undefined),
    carry: (state, _offset, bytes) => this.copy(state.id, bytes, state),
    ack: (first, count) => {
      this.seen(first + count - 1);
      this.settled.addRange(first, count);
    },
    release: (id, attempts, visibleAt) => {
      this.seen(id);
      const run = this.releasing;
      if (
        run &&
        run.first + run.count === id &&
        run.attempts === attempts &&
        run.visibleAt === visibleAt
      ) {
        run.count++;
        return;
      }
      this.endRelease();
      this.releasing = { first: id, count: 1, attempts, visibleAt };
    },
    lease: (first, count, deliveries) => {
      this.seen(first + count - 1);
      for (let id = first; id < first + count; id++) {
        if (this.settled.has(id)) continue;
        if ((this.deliveries.get(id) ?? 0) < deliveries) this.deliveries.set(id, deliveries);
      }
    },
  };

  /** One above the highest id any frame named. */
  get nextId(): number {
    return this.maxId + 1;
  }

  /** Records found waiting. */
  get records(): number {
    let grouped = 0;
    for (const group of this.groups) grouped += group.count;
    return this.fresh.size + grouped;
  }

  /**
   * Replays the trusted frames of segment `sequence` (`frames`: start and end offsets, in order),
   * from the last to the first, giving the event loop a turn every few milliseconds. Segments
   * must come newest first, one at a time.
   */
  async segment(
    sequence: number,
    kind: SegmentKind,
    data: Buffer,
    frames: readonly number[],
  ): Promise<ReplayedSegment> {
    this.sequence = sequence;
    this.live = 0;
    this.written = 0;
    this.building.clear();
    let stepStarted = performance.now();
    for (let i = frames.length - 2; i >= 0; i -= 2) {
      if (i % 4096 === 0 && performance.now() - stepStarted > STEP_MS) {
        await yieldToEventLoop();
        stepStarted = performance.now();
      }
      this.at = frames[i]!;
      this.end = frames[i + 1]!;
      replayFrame(data, this.at, this.end, kind, this.visitor);
      this.endRelease();
    }
    return { live: this.live, written: this.written };
  }

  /** Once every segment is replayed: puts runs in id order, forgets what no frame holds. */
  finish(): void {
    for (const group of this.groups) group.runs = reversedRuns(group.runs);
    for (const id of this.deliveries.keys()) if (!this.settled.has(id)) this.deliveries.delete(id);
    this.pending.clear();
  }

  /** A copy of record `id` (APPEND, or CARRY with `state`): its newest, unless one was met. */
  private copy(id: number, bytes: number, state: CarriedState | undefined): void {
    this.written++;
    this.seen(id);
    if (!this.settled.add(id)) return;
    this.live++;
    const run = this.pendingRun(id);
    if (run !== undefined) {
      if (--run.left === 0) this.dropRun(run);
      const delivered = Math.max(run.attempts, state?.deliveries ?? 0);
      this.group(id, bytes, run, run.visibleAt, run.attempts, delivered);
    } else if (state !== undefined) {
      this.group(
        id,
        bytes,
        undefined,
        state.visibleAt,
        state.attempts,
        Math.max(state.deliveries, state.attempts),
      );
    } else {
      this.fresh.add(id);
      this.freshSegment = this.sequence;
      this.freshOffset = this.at;
    }
  }

  /** Adds a record waiting for a retry to its group in this segment, or starts one. */
  private group(
    id: number,
    bytes: number,
    run: PendingRun | undefined,
    visibleAt: number,
    attempts: number,
    delivered: number,
  ): void {
    const crashed = this.deliveries.get(id) ?? 0;
    if (crashed <= delivered) this.deliveries.delete(id);
    const deliveries = Math.max(crashed, delivered);
    if (attempts > 0) this.retries++;
    let group = this.building.get(run);
    // Copies of one retry time, one after another (CARRY), or of one release (wherever they are).
    if (
      group === undefined ||
      group.visibleAt !== visibleAt ||
      id > group.firstId ||
      (run === undefined && group.start !== this.end) ||
      group.start - this.end > MAX_GAP_BYTES
    ) {
      group = {
        visibleAt,
        firstId: id,
        count: 0,
        bytes: 0,
        segment: this.sequence,
        start: this.at,
        end: this.end,
        runs: [],
      };
      this.groups.push(group);
      this.building.set(run, group);
    }
    group.start = this.at;
    group.firstId = id;
    group.count++;
    group.bytes += bytes;
    // Runs are gathered from the highest id down, and turned around by `finish`.
    const runs = group.runs;
    const n = runs.length;
    if (n > 0 && runs[n - 4] === id + 1 && runs[n - 2] === attempts && runs[n - 1] === deliveries) {
      runs[n - 4] = id;
      runs[n - 3] = runs[n - 3]! + 1;
    } else {
      runs.push(id, 1, attempts, deliveries);
    }
  }

  /** The RELEASE frame's last run is complete: keeps it, for the ids not settled nor released since. */
  private endRelease(): void {
    const release = this.releasing;
    if (release === undefined) return;
    this.releasing = undefined;
    let left = 0;
    for (let id = release.first; id < release.first + release.count; id++) {
      if (!this.settled.has(id) && this.pendingRun(id) === undefined) left++;
    }
    if (left === 0) return;
    const run: PendingRun = { ...release, left };
    const last = release.first + release.count - 1;
    for (let b = Math.floor(release.first / BUCKET_IDS); b <= Math.floor(last / BUCKET_IDS); b++) {
      const bucket = this.pending.get(b);
      if (bucket) bucket.push(run);
      else this.pending.set(b, [run]);
    }
  }

  /** The newest pending run holding `id`. */
  private pendingRun(id: number): PendingRun | undefined {
    const bucket = this.pending.get(Math.floor(id / BUCKET_IDS));
    if (bucket === undefined) return undefined;
    for (const run of bucket) if (id >= run.first && id < run.first + run.count) return run;
    return undefined;
  }

  private dropRun(run: PendingRun): void {
    const last = run.first + run.count - 1;
    for (let b = Math.floor(run.first / BUCKET_IDS); b <= Math.floor(last / BUCKET_IDS); b++) {
      const bucket = this.pending.get(b);
      if (bucket === undefined) continue;
      bucket.splice(bucket.indexOf(run), 1);
      if (bucket.length === 0) this.pending.delete(b);
    }
  }

  private seen(id: number): void {
    if (id > this.maxId) this.maxId = id;
  }
}

/** (first, count, attempts, deliveries) runs gathered from the highest id down, in id order. */
function reversedRuns(runs: readonly number[]): number[] {
  const reversed: number[] = [];
  for (let i = runs.length - 4; i >= 0; i -= 4) {
    reversed.push(runs[i]!, runs[i + 1]!, runs[i + 2]!, runs[i + 3]!);
  }
  return reversed;
}
