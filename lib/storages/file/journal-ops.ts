import type { RecordId } from '../../core/storage.js';
import {
  writeAckFrame,
  writeAppendFrame,
  writeCarryFrame,
  writeLeaseFrame,
  writeReleaseFrame,
  type Payload,
} from './journal-frames.js';
import type { LiveRecord } from './live-record.js';
import type { Segment } from './segment-table.js';

/* What the journal writer queues: one operation per call, each written as one or more frames. */

export interface AppendOp {
  readonly kind: 'append';
  readonly records: LiveRecord[];
  /** The records' serialized texts, in order. */
  readonly payloads: readonly string[];
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

export interface ReleaseOp {
  readonly kind: 'release';
  readonly visibleAt: number;
  readonly pairs: number[];
  readonly bytes: number;
}

export interface CarryOp {
  readonly kind: 'carry';
  readonly records: LiveRecord[];
  /** The records' payloads: their text, or their bytes read back from their segment. */
  readonly payloads: readonly Payload[];
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
    while (n < ops.length && (n === 0 || bytes + (ops[n] as Op).bytes <= maxBytes)) {
      bytes += (ops[n] as Op).bytes;
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
      else kept.push(op);
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
        const record = op.records[i] as LiveRecord;
        const payload = op.payloads[i] as string;
        const start = writeAppendFrame(buf, at, tag, record.id, payload, record.bytes);
        placed.push(position + start);
        at = start + record.bytes;
      }
      return at;
    case 'carry':
      for (let i = 0; i < op.records.length; i++) {
        const record = op.records[i] as LiveRecord;
        if (record.acked) {
          placed.push(-1);
          continue;
        }
        const payload = op.payloads[i] as Payload;
        const start = writeCarryFrame(buf, at, tag, record, payload, record.bytes);
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
