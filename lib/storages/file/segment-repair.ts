import path from 'node:path';
import type { DirectoryIdentity } from './directory-id.js';
import { closeFd, datasync, truncateFd, writeFully } from './file-io.js';
import {
  LEGACY_HEADER_BYTES,
  LEGACY_VERSION,
  encodeHeader,
  type SegmentKind,
} from './journal-format.js';
import { FRAME_HEAD_BYTES, padFrame } from './journal-frames.js';
import type { Quarantine, QuarantineEntry } from './quarantine.js';
import type { JournalDamage } from './recovery-report.js';
import { openSafely } from './safe-files.js';
import type { DamagedRange, SegmentScan } from './segment-reader.js';

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
    quarantined: locations[i] as string,
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
