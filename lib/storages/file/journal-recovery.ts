import fs from 'node:fs/promises';
import path from 'node:path';
import { SerializationError, StorageError } from '../../core/errors.js';
import type { Serializer } from '../serializer.js';
import type { Durability } from './file-storage-options.js';
import { closeFd, datasync, openFd, syncDirectory, truncateFd } from './file-io.js';
import {
  FORMAT_VERSION,
  headerVersion,
  parseSegmentName,
  parseSpareName,
  readSegment,
  type FrameVisitor,
} from './journal-format.js';
import type { LiveRecord } from './live-record.js';
import type { RecoveryCut } from './recovery-report.js';
import { SegmentTable } from './segment-table.js';

/** What replaying a journal directory found. */
export interface RecoveredJournal<T> {
  /** Records not acknowledged, in id (append) order, leased ones at the crash included. */
  readonly records: LiveRecord<T>[];
  /** The segments kept, with how many live records each holds. */
  readonly segments: SegmentTable;
  /** Spare files (dead segments kept for reuse), by name; they hold no records. */
  readonly spares: string[];
  readonly nextId: number;
  /** Above every segment's and every spare's sequence, so no stale frame can carry its tag. */
  readonly nextSequence: number;
  readonly segmentsRead: number;
  readonly cuts: RecoveryCut[];
}

interface Replayed {
  readonly segment: number;
  readonly data: Buffer;
  readonly offset: number;
  readonly bytes: number;
  attempts: number;
  visibleAt: number;
}

/**
 * Reads every segment in order and replays its frames. A segment's unreadable tail (a write torn
 * by a crash, or damaged bytes) is cut off the file and reported; the records before it are kept.
 * What follows a segment's last frame cleanly (zeros written ahead, an earlier life's frames) is
 * left alone: it is the space the segment would have been written into.
 */
export async function recoverJournal<T>(
  directory: string,
  serializer: Serializer<T>,
  durability: Durability,
): Promise<RecoveredJournal<T>> {
  const found: [number, string][] = [];
  const spares: string[] = [];
  let maxSequence = 0;
  for (const name of await fs.readdir(directory)) {
    const sequence = parseSegmentName(name);
    if (sequence !== undefined) found.push([sequence, name]);
    const spare = parseSpareName(name);
    if (spare !== undefined) spares.push(name);
    maxSequence = Math.max(maxSequence, sequence ?? spare ?? 0);
  }
  found.sort((a, b) => a[0] - b[0]);
  spares.sort();

  const live = new Map<number, Replayed>();
  const segments = new SegmentTable();
  const cuts: RecoveryCut[] = [];
  let maxId = -1;
  let sequence = 0;
  let data = Buffer.alloc(0);
  let written = 0;
  const seen = (id: number): void => {
    if (id > maxId) maxId = id;
  };
  const visitor: FrameVisitor = {
    append(id, offset, bytes) {
      live.set(id, { segment: sequence, data, offset, bytes, attempts: 0, visibleAt: 0 });
      written++;
      seen(id);
    },
    carry(id, attempts, visibleAt, offset, bytes) {
      live.set(id, { segment: sequence, data, offset, bytes, attempts, visibleAt });
      written++;
      seen(id);
    },
    ack(first, count) {
      seen(first + count - 1);
      if (count <= live.size) {
        for (let id = first; id < first + count; id++) live.delete(id);
      } else {
        for (const id of live.keys()) if (id >= first && id < first + count) live.delete(id);
      }
    },
    release(id, attempts, visibleAt) {
      seen(id);
      const record = live.get(id);
      if (record) {
        record.attempts = attempts;
        record.visibleAt = visibleAt;
      }
    },
  };

  for (const [seq, name] of found) {
    const file = path.join(directory, name);
    sequence = seq;
    data = await fs.readFile(file);
    written = 0;
    refuseOtherVersions(data, file);
    const { damage } = readSegment(data, seq, visitor);
    if (damage) {
      cuts.push({
        segment: name,
        offset: damage.offset,
        bytes: data.length - damage.offset,
        reason: damage.reason,
      });
      await cutSegment(file, damage.offset);
    }
    if (damage?.offset !== 0) segments.add(seq, 0, written);
  }
  if (cuts.length > 0 && durability === 'fsync') await syncDirectory(directory);

  const ids = [...live.keys()].sort((a, b) => a - b);
  const records: LiveRecord<T>[] = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number;
    const replayed = live.get(id) as Replayed;
    let record: T;
    try {
      const text = replayed.data.toString(
        'utf8',
        replayed.offset,
        replayed.offset + replayed.bytes,
      );
      record = serializer.deserialize(text);
    } catch (error) {
      const segment = segments.get(replayed.segment)?.name ?? String(replayed.segment);
      const reason = error instanceof Error ? error.message : String(error);
      throw new SerializationError(
        `FileStorage cannot deserialize record ${id} (${segment} at offset ${replayed.offset} in "${directory}"): ${reason}`,
        { cause: error },
      );
    }
    const segment = segments.get(replayed.segment);
    if (segment) segment.live++;
    records[i] = {
      id,
      record,
      bytes: replayed.bytes,
      attempts: replayed.attempts,
      visibleAt: replayed.visibleAt,
      segment: replayed.segment,
      offset: replayed.offset,
      acked: false,
    };
  }
  return {
    records,
    segments,
    spares,
    nextId: maxId + 1,
    nextSequence: maxSequence + 1,
    segmentsRead: found.length,
    cuts,
  };
}

/** A journal from another format version is refused, not cut: its data may well be intact. */
function refuseOtherVersions(data: Buffer, file: string): void {
  const version = headerVersion(data);
  if (version !== undefined && version !== FORMAT_VERSION) {
    throw new StorageError(
      `FileStorage cannot read ${file}: it was written in journal format version ${version}, this version reads ${FORMAT_VERSION}`,
    );
  }
}

/** Removes a segment's bytes from `offset` on; a segment without a readable header goes whole. */
async function cutSegment(file: string, offset: number): Promise<void> {
  if (offset === 0) {
    await fs.unlink(file);
    return;
  }
  const fd = await openFd(file, 'r+');
  try {
    await truncateFd(fd, offset);
    await datasync(fd);
  } finally {
    await closeFd(fd);
  }
}
