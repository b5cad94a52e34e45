import path from 'node:path';
import type { DirectoryIdentity } from './directory-id.js';
import { closeFd, datasync, readAt, truncateFd, writeFully } from './file-io.js';
import {
  LEGACY_HEADER_BYTES,
  LEGACY_VERSION,
  encodeHeader,
  type SegmentKind,
} from './journal-format.js';
import { FRAME_HEAD_BYTES, FRAME_PAD, padFrame } from './journal-frames.js';
import type { Quarantine, QuarantineEntry } from './quarantine.js';
import type { JournalDamage } from './recovery-report.js';
import { openSafely, readSafely } from './safe-files.js';
import { scanSegmentPatiently, type DamagedRange, type SegmentScan } from './segment-reader.js';

/*
 * Segments as read at open: whole, one at a time, with their damage kept in quarantine and
 * repaired, and their copies merged.
 */

/** A segment file as read at open, and what reading it found. */
export interface DamagedSegment {
  readonly directory: string;
  readonly name: string;
  readonly data: Buffer;
  readonly kind: SegmentKind;
  readonly scan: SegmentScan;
  readonly sequence: number;
  readonly headerDamaged: boolean;
  /** Repair the file (the segment itself); a copy of a segment is left as it is. */
  readonly rewrite: boolean;
  readonly quarantine: Quarantine;
  readonly identity: DirectoryIdentity;
}

/**
 * Copies a segment's damaged bytes to quarantine (synced), then repairs the file so that the next
 * open reads it cleanly: a damaged header is written anew, damaged bytes between frames are
 * overwritten by a PAD frame, and damaged bytes at the end are cut off. Returns what was done.
 */
export async function repairSegment(segment: DamagedSegment): Promise<JournalDamage[]> {
  const { data, kind } = segment;
  const ranges: DamagedRange[] = [];
  if (segment.headerDamaged) {
    const bytes = Math.min(data.length, kind.headerBytes);
    const reason = data.length < kind.headerBytes ? 'incomplete' : 'header';
    ranges.push({ offset: 0, bytes, reason, tail: false });
  }
  ranges.push(...segment.scan.damage);
  if (ranges.length === 0) return [];
  const entries: QuarantineEntry[] = ranges.map((range) => ({
    source: segment.name,
    offset: range.offset,
    reason: range.reason,
    bytes: data.subarray(range.offset, range.offset + range.bytes),
  }));
  const locations = await segment.quarantine.keep(entries);
  const repairs = segment.rewrite
    ? await rewrite(segment, ranges)
    : ranges.map((): JournalDamage['repair'] => 'kept');
  return ranges.map((range, i) => ({
    segment: segment.name,
    offset: range.offset,
    bytes: range.bytes,
    reason: range.reason,
    repair: repairs[i] as JournalDamage['repair'],
    quarantined: locations[i]!,
  }));
}

async function rewrite(
  segment: DamagedSegment,
  ranges: readonly DamagedRange[],
): Promise<JournalDamage['repair'][]> {
  const { fd } = await openSafely(path.join(segment.directory, segment.name), 'update');
  const repairs: JournalDamage['repair'][] = [];
  try {
    for (const [i, range] of ranges.entries()) {
      if (i === 0 && segment.headerDamaged) {
        const header = headerFor(segment);
        await writeFully(fd, header, header.length, 0);
        repairs.push('header-rewritten');
      } else if (range.tail) {
        await truncateFd(fd, range.offset);
        repairs.push('cut');
      } else if (range.bytes > FRAME_HEAD_BYTES) {
        const pad = padFrame(segment.kind.tag, range.bytes);
        await writeFully(fd, pad, pad.length, range.offset);
        repairs.push('padded');
      } else {
        repairs.push('kept');
      }
    }
    await datasync(fd);
  } finally {
    await closeFd(fd);
  }
  return repairs;
}

function headerFor(segment: DamagedSegment): Buffer {
  if (segment.kind.version !== LEGACY_VERSION) {
    return encodeHeader({
      sequence: segment.sequence,
      directoryId: segment.identity.id,
      previous: 0,
      idFloor: 0,
    });
  }
  const header = Buffer.alloc(LEGACY_HEADER_BYTES);
  header.write('BUFIOJ', 0, 'latin1');
  header[6] = LEGACY_VERSION;
  header.writeUInt32LE(segment.sequence % 2 ** 32, 8);
  header.writeUInt32LE(Math.floor(segment.sequence / 2 ** 32), 12);
  return header;
}

/** A file holding (a copy of) a segment, as found at open. */
export interface SegmentFileOf {
  readonly name: string;
  readonly kind: SegmentKind;
  readonly headerDamaged: boolean;
}

/** What reading one segment (and its copies) gave. */
interface ReadSegment {
  /** The bytes its frames are replayed from. */
  readonly data: Buffer;
  /** Its trusted frames in `data`, as (start, end) offsets. */
  readonly frames: number[];
  /** Where its frames end, in its file. */
  readonly end: number;
  readonly skipped: number;
  readonly damage: JournalDamage[];
}

/**
 * Reads a segment whole, finds its trusted frames, keeps its damaged bytes in quarantine and
 * repairs its file. Copies of it are merged frame by frame: if a copy holds frames the segment's
 * own file lacks, the file is rewritten with every frame found, so that it alone holds them.
 */
export async function readSegment(
  directory: string,
  sequence: number,
  group: readonly SegmentFileOf[],
  quarantine: Quarantine,
  identity: DirectoryIdentity,
  into: Buffer,
): Promise<ReadSegment> {
  const damage: JournalDamage[] = [];
  const sources: { data: Buffer; scan: SegmentScan }[] = [];
  let skipped = 0;
  for (const [i, member] of group.entries()) {
    // The segment's own file into the buffer reused from segment to segment; copies apart.
    const data = await readSafely(
      path.join(directory, member.name),
      false,
      i === 0 ? into : undefined,
    );
    const scan = await scanSegmentPatiently(data, member.kind);
    skipped += scan.damage.length;
    sources.push({ data, scan });
    damage.push(
      ...(await repairSegment({
        directory,
        name: member.name,
        data,
        kind: member.kind,
        scan,
        headerDamaged: member.headerDamaged,
        rewrite: i === 0,
        quarantine,
        identity,
        sequence,
      })),
    );
  }
  const own = sources[0] as { data: Buffer; scan: SegmentScan };
  const primary = group[0]!;
  if (sources.length > 1) {
    const merged = await mergeCopies(directory, primary, sources);
    if (merged) return { ...merged, skipped, damage };
  }
  return { data: own.data, frames: own.scan.frames, end: own.scan.end, skipped, damage };
}

/**
 * The frames of every copy, by offset (a PAD, damage covered in one copy, yields to a frame);
 * undefined when the segment's own file holds them all. Otherwise the file is rewritten: its
 * header, then every frame, one after another.
 */
async function mergeCopies(
  directory: string,
  primary: SegmentFileOf,
  sources: readonly { data: Buffer; scan: SegmentScan }[],
): Promise<{ data: Buffer; frames: number[]; end: number } | undefined> {
  const byOffset = new Map<number, [Buffer, number]>();
  let fromCopy = false;
  for (const [i, { data, scan }] of sources.entries()) {
    for (let f = 0; f < scan.frames.length; f += 2) {
      const at = scan.frames[f]!;
      const known = byOffset.get(at);
      if (known === undefined || (isPad(known[0], at) && !isPad(data, at))) {
        byOffset.set(at, [data, scan.frames[f + 1]!]);
        if (i > 0 && !isPad(data, at)) fromCopy = true;
      }
    }
  }
  if (!fromCopy) return undefined;
  const file = path.join(directory, primary.name);
  const { head } = await readHead(file, primary.kind.headerBytes);
  const parts: Buffer[] = [head];
  const frames: number[] = [];
  let end = head.length;
  for (const at of [...byOffset.keys()].sort((a, b) => a - b)) {
    const [data, frameEnd] = byOffset.get(at) as [Buffer, number];
    if (isPad(data, at)) continue;
    parts.push(data.subarray(at, frameEnd));
    frames.push(end, end + frameEnd - at);
    end += frameEnd - at;
  }
  const data = Buffer.concat(parts);
  const { fd } = await openSafely(file, 'update');
  try {
    await writeFully(fd, data, data.length, 0);
    await truncateFd(fd, data.length);
    await datasync(fd);
  } finally {
    await closeFd(fd);
  }
  return { data, frames, end };
}

function isPad(data: Buffer, at: number): boolean {
  return data[at + FRAME_HEAD_BYTES] === FRAME_PAD;
}

/** The first `bytes` of a file opened safely, and its size. */
export async function readHead(
  file: string,
  bytes: number,
): Promise<{ head: Buffer; size: number }> {
  const { fd, size } = await openSafely(file, 'read');
  try {
    const head = Buffer.alloc(Math.min(bytes, size));
    const read = await readAt(fd, head, 0);
    return { head: head.subarray(0, read), size };
  } finally {
    await closeFd(fd);
  }
}
