import { segmentName } from './journal-format.js';

/** What the storage knows of one segment file. */
export interface Segment {
  readonly sequence: number;
  readonly name: string;
  /** Records whose bytes are in this segment and are not acknowledged. */
  live: number;
  /** Records written to this segment in all (appended or carried into it). */
  written: number;
  /**
   * The write burst that holds the last frame making a record of this segment dead (an ack, or
   * the copy of a carried record). The segment may be deleted once that burst is on disk.
   */
  deadAfterBurst: number;
  /** Acknowledgements of its records still queued, not yet in any burst. */
  unwrittenAcks: number;
  /** Its last live records have been copied forward once already; not tried again. */
  carried: boolean;
}

/** The journal's segments, oldest first. */
export class SegmentTable {
  private readonly bySequence = new Map<number, Segment>();
  private last: Segment | undefined;

  add(sequence: number, live = 0, written = 0): Segment {
    const segment: Segment = {
      sequence,
      name: segmentName(sequence),
      live,
      written,
      deadAfterBurst: 0,
      unwrittenAcks: 0,
      carried: false,
    };
    this.bySequence.set(sequence, segment);
    return segment;
  }

  get(sequence: number): Segment | undefined {
    // Acks come in runs from one segment: remember the last one looked up.
    if (this.last?.sequence === sequence) return this.last;
    const segment = this.bySequence.get(sequence);
    if (segment) this.last = segment;
    return segment;
  }

  delete(sequence: number): void {
    this.bySequence.delete(sequence);
    if (this.last?.sequence === sequence) this.last = undefined;
  }

  /** Oldest first (sequences are added in increasing order). */
  values(): IterableIterator<Segment> {
    return this.bySequence.values();
  }

  get count(): number {
    return this.bySequence.size;
  }

  /** A record of `sequence` is dead, the frame saying so waiting to be written. */
  recordAcked(sequence: number): Segment | undefined {
    const segment = this.get(sequence);
    if (segment) segment.live--;
    return segment;
  }

  /** A record of `sequence` moved out of it, in burst `burst`. */
  recordCarried(sequence: number, burst: number): void {
    const segment = this.get(sequence);
    if (!segment) return;
    segment.live--;
    if (burst > segment.deadAfterBurst) segment.deadAfterBurst = burst;
  }
}
