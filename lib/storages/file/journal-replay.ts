import { type SegmentKind } from './journal-format.js';
import {
  FRAME_HEAD_BYTES,
  FRAME_PAD,
  replayFrame,
  type CarriedState,
  type FrameVisitor,
} from './journal-frames.js';
import type { LiveRecord } from './live-record.js';
import type { SegmentScan } from './segment-reader.js';
import type { SegmentTable } from './segment-table.js';

/** A record as replayed so far: where its payload is, and its state. */
interface Replayed {
  readonly segment: number;
  readonly data: Buffer;
  readonly offset: number;
  readonly bytes: number;
  attempts: number;
  visibleAt: number;
  deliveries: number;
}

/** One file of a segment, with its trusted frames. */
export interface ReplaySource {
  readonly data: Buffer;
  readonly kind: SegmentKind;
  readonly scan: SegmentScan;
}

/**
 * Rebuilds the live records from trusted frames, segment by segment in sequence order. Every
 * field a frame sets is absolute, and copies of one segment are merged frame by frame (by offset),
 * so each frame counts once, in its place.
 */
export class JournalReplay {
  private readonly live = new Map<number, Replayed>();
  private maxId = -1;
  private sequence = 0;
  private data: Buffer = Buffer.alloc(0);
  private written = 0;
  /** Frames replayed by the last `segment` call. */
  lastFrames = 0;

  private readonly visitor: FrameVisitor = {
    append: (id, offset, bytes) => {
      this.put(id, offset, bytes, 0, 0, this.live.get(id)?.deliveries ?? 0);
    },
    carry: (state: CarriedState, offset, bytes) => {
      const deliveries = Math.max(state.deliveries, this.live.get(state.id)?.deliveries ?? 0);
      this.put(state.id, offset, bytes, state.attempts, state.visibleAt, deliveries);
    },
    ack: (first, count) => {
      this.seen(first + count - 1);
      if (count <= this.live.size) {
        for (let id = first; id < first + count; id++) this.live.delete(id);
      } else {
        for (const id of this.live.keys())
          if (id >= first && id < first + count) this.live.delete(id);
      }
    },
    release: (id, attempts, visibleAt) => {
      this.seen(id);
      const record = this.live.get(id);
      if (record) {
        record.attempts = attempts;
        record.visibleAt = visibleAt;
      }
    },
    lease: (first, count, deliveries) => {
      this.seen(first + count - 1);
      for (let id = first; id < first + count; id++) {
        const record = this.live.get(id);
        if (record && record.deliveries < deliveries) record.deliveries = deliveries;
      }
    },
  };

  /** One above the highest id any frame named. */
  get nextId(): number {
    return this.maxId + 1;
  }

  /** Replays the trusted frames of segment `sequence`; returns how many records it wrote. */
  segment(sequence: number, sources: readonly ReplaySource[]): number {
    this.sequence = sequence;
    this.written = 0;
    this.lastFrames = 0;
    if (sources.length === 1) {
      const { data, kind, scan } = sources[0] as ReplaySource;
      for (let i = 0; i < scan.frames.length; i += 2) {
        this.frame(data, kind, scan.frames[i] as number, scan.frames[i + 1] as number);
      }
      return this.written;
    }
    // A frame found in any copy counts; a PAD (damage covered in one copy) yields to a frame.
    const byOffset = new Map<number, [ReplaySource, number]>();
    for (const source of sources) {
      for (let i = 0; i < source.scan.frames.length; i += 2) {
        const at = source.scan.frames[i] as number;
        const found = byOffset.get(at);
        if (found === undefined || (isPad(found[0].data, at) && !isPad(source.data, at))) {
          byOffset.set(at, [source, source.scan.frames[i + 1] as number]);
        }
      }
    }
    for (const at of [...byOffset.keys()].sort((a, b) => a - b)) {
      const [source, end] = byOffset.get(at) as [ReplaySource, number];
      this.frame(source.data, source.kind, at, end);
    }
    return this.written;
  }

  /** The records still live, in id order, counted into their segments. */
  liveRecords(segments: SegmentTable): LiveRecord[] {
    const ids = [...this.live.keys()].sort((a, b) => a - b);
    const records = new Array<LiveRecord>(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      const replayed = this.live.get(id) as Replayed;
      const segment = segments.get(replayed.segment);
      if (segment) segment.live++;
      records[i] = {
        id,
        value: undefined,
        text: replayed.data.toString('utf8', replayed.offset, replayed.offset + replayed.bytes),
        bytes: replayed.bytes,
        attempts: replayed.attempts,
        deliveries: Math.max(replayed.deliveries, replayed.attempts),
        visibleAt: replayed.visibleAt,
        segment: replayed.segment,
        offset: replayed.offset,
        acked: false,
      };
    }
    return records;
  }

  private frame(data: Buffer, kind: SegmentKind, at: number, end: number): void {
    this.data = data;
    this.lastFrames++;
    replayFrame(data, at, end, kind, this.visitor);
  }

  private put(
    id: number,
    offset: number,
    bytes: number,
    attempts: number,
    visibleAt: number,
    deliveries: number,
  ): void {
    const { sequence: segment, data } = this;
    this.live.set(id, { segment, data, offset, bytes, attempts, visibleAt, deliveries });
    this.written++;
    this.seen(id);
  }

  private seen(id: number): void {
    if (id > this.maxId) this.maxId = id;
  }
}

function isPad(data: Buffer, at: number): boolean {
  return data[at + FRAME_HEAD_BYTES] === FRAME_PAD;
}
