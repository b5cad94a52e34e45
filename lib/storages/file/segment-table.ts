import { LEGACY_VERSION, segmentName, type SegmentKind } from './journal-format.js';

/** What the storage knows of one segment file. */
export interface Segment {
  readonly sequence: number;
  /** Its file, within the directory (named after the sequence, unless only a copy was found). */
  readonly name: string;
  /** Other files found holding a copy of it; removed with it. */
  readonly copies: readonly string[];
  /** How its frames are recognized (tag, format version). */
  readonly kind: SegmentKind;
  /** Written in format 2 (BufIO 0.2.0): deleted when dead, never kept as a spare. */
  readonly legacy: boolean;
  /**
   * Where readers may read its frames up to: the end of the last burst whose frames are applied
   * (written, and synced when they had to be), or of its frames as found at open.
   */
  end: number;
  /** Bytes of its file (and of its copies), as allocated on disk, for the journal's budget. */
  fileBytes: number;
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

/** How a segment found at open is added. */
export interface FoundSegment {
  readonly file: string;
  readonly copies: readonly string[];
  readonly written: number;
  readonly live: number;
  readonly end: number;
}

/** The journal's segments, oldest first. */
export class SegmentTable {
  private readonly bySequence = new Map<number, Segment>();
  private last: Segment | undefined;

  /** Adds a segment: a new one (the head), or one found at open. */
  add(sequence: number, kind: SegmentKind, found?: FoundSegment): Segment {
    const segment: Segment = {
      sequence,
      name: found?.file ?? segmentName(sequence),
      copies: found?.copies ?? [],
      kind,
      legacy: kind.version === LEGACY_VERSION,
      end: found?.end ?? kind.headerBytes,
      fileBytes: 0,
      live: found?.live ?? 0,
      written: found?.written ?? 0,
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

  /** The segment after `sequence` (the oldest with a higher sequence), if any. */
  after(sequence: number): Segment | undefined {
    for (const segment of this.bySequence.values()) if (segment.sequence > sequence) return segment;
    return undefined;
  }

  /** The oldest segment. */
  first(): Segment | undefined {
    return this.bySequence.values().next().value as Segment | undefined;
  }

  /** Oldest first (sequences are added in increasing order). */
  values(): IterableIterator<Segment> {
    return this.bySequence.values();
  }

  get count(): number {
    return this.bySequence.size;
  }

  /** A record of `sequence` is dead, the frame saying so queued: the segment must wait for it. */
  ackQueued(sequence: number): Segment | undefined {
    const segment = this.get(sequence);
    if (segment) {
      segment.live--;
      segment.unwrittenAcks++;
    }
    return segment;
  }

  /** The acknowledgements queued for `segment` are written, in burst `burst`. */
  ackWritten(segment: Segment, count: number, burst: number): void {
    segment.unwrittenAcks -= count;
    if (burst > segment.deadAfterBurst) segment.deadAfterBurst = burst;
  }

  /** A record of `sequence` moved out of it, in burst `burst`. */
  recordCarried(sequence: number, burst: number): void {
    const segment = this.get(sequence);
    if (!segment) return;
    segment.live--;
    if (burst > segment.deadAfterBurst) segment.deadAfterBurst = burst;
  }
}
