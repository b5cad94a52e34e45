import { type SegmentKind } from './journal-format.js';
import { FRAME_HEAD_BYTES, frameChecksum, frameEndAt } from './journal-frames.js';

/** Writes tear at page boundaries; 4 KiB divides every page size Linux and macOS use. */
const PAGE_BYTES = 4096;

/**
 * Why bytes of a segment could not be read: `'incomplete'`, a frame cut short (it runs past the
 * end of the file, or it is the segment's last, crosses a 4 KiB page boundary and fails its
 * checksum: the mark of a write torn by a crash); `'checksum'`, bytes that are not a trusted frame
 * where one was due (a checksum, tag or field that fails); `'header'`, a segment header that fails.
 */
export type DamageReason = 'incomplete' | 'checksum' | 'header';

/** Bytes of a segment that are not trusted frames, where frames were due. */
export interface DamagedRange {
  readonly offset: number;
  readonly bytes: number;
  readonly reason: DamageReason;
  /** No trusted frame follows: the segment ends here, and the range may be cut off. */
  readonly tail: boolean;
}

/** What scanning a segment found. */
export interface SegmentScan {
  /** Where its trusted frames end: the offset after the last one. */
  readonly end: number;
  /** The trusted frames, as (start, end) offsets, in order. */
  readonly frames: number[];
  readonly damage: DamagedRange[];
}

/**
 * Finds every trusted frame of a segment, in order. A stretch of bytes that is
 * not a trusted frame is skipped, and reading resynchronizes at the next trusted frame, so
 * damage in one frame costs that frame only. Where no trusted frame follows, the segment ends:
 * cleanly if what follows is zeros, or bytes without this segment's tag (zeros written ahead, a
 * reused file's earlier frames); as damage if it is a frame of this segment that fails (with its
 * tag, or one whose checksum passes with this segment's tag in place of its own).
 */
export function scanSegment(data: Buffer, kind: SegmentKind): SegmentScan {
  const steps = scanSteps(data, kind);
  for (let step = steps.next(); ; step = steps.next()) if (step.done) return step.value;
}

/**
 * `scanSegment`, giving the event loop a turn every few milliseconds: a segment of 16 MiB takes
 * tens of milliseconds to check, and a journal of millions of records many segments.
 */
export async function scanSegmentPatiently(data: Buffer, kind: SegmentKind): Promise<SegmentScan> {
  const steps = scanSteps(data, kind);
  for (let step = steps.next(); ; step = steps.next()) {
    if (step.done) return step.value;
    await yieldToEventLoop();
  }
}

/** Frames checked between two looks at the clock. */
const FRAMES_PER_STEP = 2048;
/** How long a step may run before it gives the event loop a turn. */
export const STEP_MS = 8;

/** The scan, pausing (yielding) once it has run for `STEP_MS`. */
function* scanSteps(data: Buffer, kind: SegmentKind): Generator<void, SegmentScan> {
  const damage: DamagedRange[] = [];
  let at = kind.headerBytes;
  let end = at;
  const frames: number[] = [];
  let stepStarted = performance.now();
  while (at < data.length) {
    const frameEnd = frameEndAt(data, at, kind);
    if (frameEnd >= 0) {
      frames.push(at, frameEnd);
      at = end = frameEnd;
      if (frames.length % FRAMES_PER_STEP === 0 && performance.now() - stepStarted > STEP_MS) {
        yield;
        stepStarted = performance.now();
      }
      continue;
    }
    const next = nextFrame(data, at + 1, kind);
    if (next >= 0) {
      damage.push({ offset: at, bytes: next - at, reason: 'checksum', tail: false });
      at = next;
      continue;
    }
    const tail = tailDamage(data, at, kind);
    if (tail) damage.push(tail);
    break;
  }
  return { end, frames, damage };
}

/** Lets timers and I/O callbacks run before going on. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The offset of the first trusted frame at or after `from`, or -1. */
export function nextFrame(data: Buffer, from: number, kind: SegmentKind): number {
  const needle = Buffer.alloc(4);
  needle.writeUInt32LE(kind.tag);
  for (let i = data.indexOf(needle, from + 4); i !== -1; i = data.indexOf(needle, i + 1)) {
    if (frameEndAt(data, i - 4, kind) >= 0) return i - 4;
  }
  return -1;
}

/** The damage at the end of a segment, from `at` on, or undefined for a clean end. */
function tailDamage(data: Buffer, at: number, kind: SegmentKind): DamagedRange | undefined {
  const nonZero = lastNonZero(data, at) + 1;
  if (nonZero <= at) return undefined;
  // Zeros written ahead after the damage are not kept; a frame head's worth always is.
  const used = Math.max(nonZero, Math.min(data.length, at + FRAME_HEAD_BYTES));
  const short = data.length - at < FRAME_HEAD_BYTES;
  if (!short && data.readUInt32LE(at + 4) !== kind.tag && !hasDamagedTag(data, at, kind.tag)) {
    return undefined;
  }
  const claimedEnd = short ? Infinity : at + FRAME_HEAD_BYTES + data.readUInt32LE(at);
  const torn =
    claimedEnd > data.length ||
    (Math.floor(at / PAGE_BYTES) !== Math.floor((claimedEnd - 1) / PAGE_BYTES) &&
      frameChecksum(data, at, claimedEnd) !== data.readUInt32LE(at + 8));
  return { offset: at, bytes: used - at, reason: torn ? 'incomplete' : 'checksum', tail: true };
}

function lastNonZero(data: Buffer, from: number): number {
  let i = data.length - 1;
  while (i >= from && data[i] === 0) i--;
  return i;
}

/** Whether the frame at `at` would pass with this segment's tag: then only its tag was damaged. */
function hasDamagedTag(data: Buffer, at: number, tag: number): boolean {
  const bodyBytes = data.readUInt32LE(at);
  const end = at + FRAME_HEAD_BYTES + bodyBytes;
  if (bodyBytes === 0 || end > data.length) return false;
  const copy = Buffer.from(data.subarray(at, end));
  copy.writeUInt32LE(tag, 4);
  return frameChecksum(copy, 0, copy.length) === data.readUInt32LE(at + 8);
}
