import type { RecordId } from '../../core/storage.js';
import { placeOf } from './group-place.js';
import {
  carryFrameBytes,
  frameStart,
  releaseFrameBytes,
  writeAckFrame,
  writeAppendFrame,
  writeCarryFrame,
  writeLeaseFrame,
  writeReleaseFrame,
} from './journal-frames.js';
import type { LiveRecord } from './live-record.js';
import type { LiveIndex } from './live-index.js';
import type { RetryGroup } from './retry-groups.js';
import type { Segment, SegmentTable } from './segment-table.js';

/*
 * What the journal writer queues (one operation per call, each written as one or more frames),
 * and what writing it changes.
 */

export interface AppendOp {
  readonly kind: 'append';
  readonly records: LiveRecord[];
  readonly ids: readonly RecordId[];
  readonly bytes: number;
  resolve(ids: readonly RecordId[]): void;
  reject(error: Error): void;
}

export interface AckOp {
  readonly kind: 'ack';
  readonly ranges: number[];
  /** The segments these acknowledgements make records of dead, with how many each. */
  readonly segments: Map<Segment, number>;
  readonly bytes: number;
}

/**
 * Records released for a retry (a group): their new attempt counts and retry time, in a RELEASE
 * frame. The records stay where they are.
 */
export interface ReleaseOp {
  readonly kind: 'release';
  readonly visibleAt: number;
  /** (id, attempts) pairs. */
  readonly pairs: readonly number[];
  readonly group: RetryGroup;
  /** The group's records (released again or acknowledged since: the op is stale). */
  readonly records: readonly LiveRecord[];
  readonly bytes: number;
}

/**
 * Live records copied to the head, with their state (attempts, retry time, deliveries):
 * a retry group copied out of a mostly dead segment, so that the segment can go.
 */
export interface CarryOp {
  readonly kind: 'carry';
  /**
   * In id order. A record acknowledged before the op is written is left out, and so is one
   * released again since (its attempts changed).
   */
  readonly records: readonly LiveRecord[];
  /** Each record's attempts when the op was queued. */
  readonly attempts: readonly number[];
  readonly group: RetryGroup;
  readonly bytes: number;
}

export interface LeaseOp {
  readonly kind: 'lease';
  readonly triples: number[];
  readonly bytes: number;
  resolve(): void;
  reject(error: Error): void;
}

export type Op = AppendOp | AckOp | ReleaseOp | CarryOp | LeaseOp;

/** The release of a group (in memory, its records sorted by id). */
export function releaseOp(group: RetryGroup): ReleaseOp {
  const records = group.records as LiveRecord[];
  const pairs = new Array<number>(records.length * 2);
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    pairs[2 * i] = record.id;
    pairs[2 * i + 1] = record.attempts;
  }
  const bytes = releaseFrameBytes(records.length);
  return {
    kind: 'release',
    visibleAt: group.visibleAt,
    pairs,
    group,
    records: [...records],
    bytes,
  };
}

/** A group's records copied to the head with their state. */
export function carryOp(records: readonly LiveRecord[], group: RetryGroup): CarryOp {
  let bytes = 0;
  for (const record of records) bytes += carryFrameBytes(record.bytes);
  const attempts = records.map((record) => record.attempts);
  return { kind: 'carry', records: [...records], attempts, group, bytes };
}

/** Operations queued for the next burst, in order, with their size in bytes. */
export class OpQueue {
  private ops: Op[] = [];
  private bytes = 0;

  get length(): number {
    return this.ops.length;
  }

  push(op: Op): void {
    this.ops.push(op);
    this.bytes += op.bytes;
  }

  /** Takes operations up to `maxBytes` (at least one, whatever its size). */
  take(maxBytes: number): { ops: Op[]; bytes: number } {
    const ops = this.ops;
    if (this.bytes <= maxBytes || ops.length === 1) {
      const taken = { ops, bytes: this.bytes };
      this.ops = [];
      this.bytes = 0;
      return taken;
    }
    let n = 0;
    let bytes = 0;
    while (n < ops.length && (n === 0 || bytes + ops[n]!.bytes <= maxBytes)) {
      bytes += ops[n]!.bytes;
      n++;
    }
    this.ops = ops.slice(n);
    this.bytes -= bytes;
    return { ops: ops.slice(0, n), bytes };
  }

  /**
   * Puts back, first, what a refused burst may try again (acknowledgements, releases, carried
   * records); its appends and leases fail with `error`.
   */
  requeue(ops: readonly Op[], error: Error): void {
    const kept: Op[] = [];
    for (const op of ops) {
      if (op.kind === 'append' || op.kind === 'lease') op.reject(error);
      else if (!isObsolete(op)) kept.push(op);
    }
    this.ops = kept.concat(this.ops);
    this.bytes = 0;
    for (const op of this.ops) this.bytes += op.bytes;
  }

  /** Whether a caller waits on something queued (an append, a lease). */
  hasWaiters(): boolean {
    return this.ops.some((op) => op.kind === 'append' || op.kind === 'lease');
  }

  /** Drops everything queued; appends and leases fail with `error`. */
  rejectAll(error: Error): void {
    const ops = this.ops;
    this.ops = [];
    this.bytes = 0;
    for (const op of ops) if (op.kind === 'append' || op.kind === 'lease') op.reject(error);
  }
}

/**
 * Encodes one operation at `at` of `buf` (which will be written at `position` of the segment),
 * with the segment's tag; appended and carried records note where their payloads go (-1 for a
 * carried record acknowledged meanwhile, which is left out). Returns the end.
 */
export function encodeOp(
  op: Op,
  buf: Buffer,
  at: number,
  position: number,
  tag: number,
  placed: number[],
): number {
  switch (op.kind) {
    case 'append':
      for (let i = 0; i < op.records.length; i++) {
        const record = op.records[i]!;
        const start = writeAppendFrame(buf, at, tag, record.id, record.text, record.bytes);
        placed.push(position + start);
        at = start + record.bytes;
      }
      return at;
    case 'carry':
      for (let i = 0; i < op.records.length; i++) {
        const record = op.records[i]!;
        if (isStale(op, record, i)) {
          placed.push(-1);
          continue;
        }
        const start = writeCarryFrame(buf, at, tag, record, record.text, record.bytes);
        placed.push(position + start);
        at = start + record.bytes;
      }
      return at;
    case 'ack':
      return writeAckFrame(buf, at, tag, op.ranges);
    case 'release':
      return writeReleaseFrame(buf, at, tag, op.visibleAt, op.pairs);
    case 'lease':
      return writeLeaseFrame(buf, at, tag, op.triples);
  }
}

/** Whether a carried record is dead, or released again since the op was queued. */
function isStale(op: CarryOp, record: LiveRecord, i: number): boolean {
  return record.acked || record.attempts !== op.attempts[i];
}

/**
 * Whether a release or a copy the disk refused need not be tried again: every record of it was
 * acknowledged or released again since (so that, while the disk stays full, a worker failing
 * every call does not pile up operations).
 */
function isObsolete(op: Op): boolean {
  if (op.kind === 'carry') return op.records.every((record, i) => isStale(op, record, i));
  if (op.kind !== 'release') return false;
  return op.records.every((record, i) => record.acked || record.attempts !== op.pairs[2 * i + 1]);
}

/**
 * What a burst on disk changes: where its records are, which segments are dead, which appends
 * are answered, and how far readers may read in the head (`end`: the frames before it are
 * written, and synced when the burst held appends).
 */
export function applyWritten(
  ops: readonly Op[],
  burst: number,
  placed: readonly number[],
  end: number,
  head: Segment,
  segments: SegmentTable,
  index: LiveIndex,
): void {
  head.end = end;
  let p = 0;
  for (const op of ops) {
    if (op.kind === 'ack') {
      for (const [segment, count] of op.segments) segments.ackWritten(segment, count, burst);
    } else if (op.kind === 'append' || op.kind === 'carry') {
      for (const record of op.records) {
        const offset = placed[p++]!;
        if (offset < 0) continue;
        if (op.kind === 'carry') segments.recordCarried(record.segment, burst);
        record.segment = head.sequence;
        record.offset = offset;
        record.frame = frameStart(offset, op.kind === 'carry');
        head.live++;
        head.written++;
      }
      if (op.kind === 'append') {
        index.fresh.appended(op.records);
        op.resolve(op.ids);
      } else if (op.group.next === 0) {
        index.retries.written(op.group, placeOf(op.records));
      }
    } else if (op.kind === 'release' && op.group.next === 0 && op.group.records !== undefined) {
      // The group's state is on disk: it may leave memory, and be read back from where it is.
      index.retries.written(op.group, placeOf(op.group.records));
    }
  }
}
