import type { CarriedState } from './journal-frames.js';
import type { LiveIndex } from './live-index.js';
import type { LiveRecord } from './live-record.js';
import type { RetryGroup } from './retry-groups.js';
import type { Quarantine, QuarantineEntry } from './quarantine.js';
import { damageEnd, unreadableBytes, walkFrames, type SegmentReads } from './segment-reads.js';
import type { SegmentTable } from './segment-table.js';

/**
 * Where some records of a retry group are: the frames from `start` to `end` of one segment hold
 * them (among others'), and `runs` says which and in what state, as (first id, count, attempts,
 * deliveries) quadruples in id order.
 */
export interface GroupPart {
  readonly segment: number;
  readonly start: number;
  readonly end: number;
  readonly runs: readonly number[];
}

/** Where a retry group's records are, part by part, in id order. */
export type GroupPlace = readonly GroupPart[];

/** Frames of a group further apart than this make two reads rather than one. */
const MAX_GAP_BYTES = 256 * 1024;

/**
 * Where `records` (sorted by id) are, as parts: a record released for a retry stays where it is
 * (its state goes in a RELEASE frame), so a group is read back from the frames of its records,
 * which lie in order in one or two segments when they were reserved together.
 */
export function placeOf(records: readonly LiveRecord[]): GroupPlace {
  const parts: GroupPart[] = [];
  let part: { segment: number; start: number; end: number; runs: number[] } | undefined;
  for (const record of records) {
    if (
      part === undefined ||
      record.segment !== part.segment ||
      record.frame < part.end ||
      record.frame - part.end > MAX_GAP_BYTES
    ) {
      part = { segment: record.segment, start: record.frame, end: 0, runs: [] };
      parts.push(part);
    }
    part.end = record.offset + record.bytes;
    addToRuns(part.runs, record.id, record.attempts, record.deliveries);
  }
  return parts;
}

/** Adds a record to (first id, count, attempts, deliveries) runs, ids in increasing order. */
export function addToRuns(runs: number[], id: number, attempts: number, deliveries: number): void {
  const n = runs.length;
  if (
    n > 0 &&
    runs[n - 4]! + runs[n - 3]! === id &&
    runs[n - 2] === attempts &&
    runs[n - 1] === deliveries
  ) {
    runs[n - 3] = runs[n - 3]! + 1;
    return;
  }
  runs.push(id, 1, attempts, deliveries);
}

/** The index (a multiple of 4) of the run holding `id`, or -1. */
function runOf(runs: readonly number[], id: number): number {
  let lo = 0;
  let hi = runs.length / 4 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const first = runs[mid * 4]!;
    if (id < first) hi = mid - 1;
    else if (id >= first + runs[mid * 4 + 1]!) lo = mid + 1;
    else return mid * 4;
  }
  return -1;
}

/** Records a place holds. */
export function countOf(place: GroupPlace): number {
  let count = 0;
  for (const part of place) for (let i = 1; i < part.runs.length; i += 4) count += part.runs[i]!;
  return count;
}

/** What reading a retry group back needs. */
export interface GroupSource {
  readonly segments: SegmentTable;
  readonly reads: SegmentReads;
  /** Keeps bytes found damaged on the way. */
  readonly quarantine: Quarantine;
  readonly index: LiveIndex;
  /** Delivery counts of records leased when an earlier process stopped. */
  readonly deliveries: Map<number, number>;
  readonly onError: (error: Error) => void;
}

/**
 * Reads a retry group's records back into memory: one read per part. Records that cannot be
 * found (bytes damaged since they were written or checked at open) are given up and reported, and
 * the damaged bytes copied to quarantine.
 */
export async function loadGroup(group: RetryGroup, source: GroupSource): Promise<void> {
  const place = group.place;
  if (place === undefined || group.records !== undefined) return;
  const records: LiveRecord[] = [];
  const damaged: QuarantineEntry[] = [];
  for (const part of place) {
    const segment = source.segments.get(part.segment);
    if (segment === undefined) continue;
    const data = await source.reads.read(segment, part.start, part.end - part.start);
    const take = (id: number, offset: number, bytes: number, frameAt: number): void => {
      const run = runOf(part.runs, id);
      if (run < 0) return;
      const delivered = source.deliveries.get(id);
      if (delivered !== undefined) source.deliveries.delete(id);
      records.push({
        id,
        value: undefined,
        text: data.toString('utf8', offset, offset + bytes),
        bytes,
        attempts: part.runs[run + 2]!,
        deliveries: Math.max(part.runs[run + 3]!, delivered ?? 0),
        visibleAt: group.visibleAt,
        segment: part.segment,
        offset: part.start + offset,
        frame: part.start + frameAt,
        acked: false,
      });
    };
    const visitor = {
      append: take,
      carry: (state: CarriedState, offset: number, bytes: number, frameAt: number) =>
        take(state.id, offset, bytes, frameAt),
      ack: () => undefined,
      release: () => undefined,
      lease: () => undefined,
    };
    // Past damaged bytes, the part's other records are still found.
    for (let at = 0; at < data.length;) {
      const walk = walkFrames(data, segment.kind, visitor, () => true, at);
      if (!walk.damaged) break;
      at = damageEnd(data, walk.next, segment.kind);
      damaged.push({
        source: segment.name,
        offset: part.start + walk.next,
        reason: 'unreadable',
        bytes: data.subarray(walk.next, at),
      });
    }
  }
  const kept = await source.quarantine.keep(damaged);
  if (group.records !== undefined) return; // read meanwhile
  records.sort((a, b) => a.id - b.id);
  // A part's bytes may hold a stale copy of a record besides its own (never two of ours).
  for (let i = records.length - 1; i > 0; i--) {
    if (records[i]!.id === records[i - 1]!.id) records.splice(i, 1);
  }
  if (records.length < group.remaining) {
    const lost = group.remaining - records.length;
    source.index.retries.lost(group, lost);
    const first = place[0];
    source.onError(
      unreadableBytes(
        source.segments.get(first?.segment ?? -1)?.name ?? `segment ${first?.segment ?? '?'}`,
        first?.start ?? 0,
        `${lost} record(s) waiting for a retry`,
        kept.length > 0 ? kept.join(', ') : undefined,
      ),
    );
  }
  if (records.length > 0) source.index.retries.loaded(group, records);
}
