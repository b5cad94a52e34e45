import fs from 'node:fs/promises';
import path from 'node:path';
import { SerializationError, StorageError } from '../../core/errors.js';
import type { Serializer } from '../serializer.js';
import type { Durability } from './file-storage-options.js';
import { closeFd, datasync, openFd, syncDirectory, truncateFd } from './file-io.js';
import {
  SEGMENT_HEADER,
  parseSegmentName,
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
  readonly nextId: number;
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

/** Magic without the version byte: a journal from another format version is refused, not cut. */
const MAGIC_BYTES = 6;

/**
 * Reads every segment in order and replays its frames. A segment's unreadable tail (a write torn
 * by a crash, or damaged bytes) is cut off the file and reported; the records before it are kept.
 */
export async function recoverJournal<T>(
  directory: string,
  serializer: Serializer<T>,
  durability: Durability,
): Promise<RecoveredJournal<T>> {
  const found: [number, string][] = [];
  for (const name of await fs.readdir(directory)) {
    const sequence = parseSegmentName(name);
    if (sequence !== undefined) found.push([sequence, name]);
  }
  found.sort((a, b) => a[0] - b[0]);

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
    const damage = readSegment(data, visitor);
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
  const last = found[found.length - 1];
  return {
    records,
    segments,
    nextId: maxId + 1,
    nextSequence: last === undefined ? 1 : last[0] + 1,
    segmentsRead: found.length,
    cuts,
  };
}

function refuseOtherVersions(data: Buffer, file: string): void {
  if (
    data.length >= SEGMENT_HEADER.length &&
    data.subarray(0, MAGIC_BYTES).equals(SEGMENT_HEADER.subarray(0, MAGIC_BYTES)) &&
    !data.subarray(0, SEGMENT_HEADER.length).equals(SEGMENT_HEADER)
  ) {
    throw new StorageError(
      `FileStorage cannot read ${file}: it was written in journal format version ${data[MAGIC_BYTES]}, this version reads ${SEGMENT_HEADER[MAGIC_BYTES]}`,
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
