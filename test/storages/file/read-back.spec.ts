import { describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { StorageError } from '../../../lib/core/errors.js';
import { memoryBytesOption } from '../../../lib/storages/file/file-storage-options.js';
import { T0, flipByte, frameOffsets, rec, segmentFiles, useSandbox, type Rec } from './support.js';

/*
 * Records that wait on disk only are read back when reserved, and checked as at open: bytes
 * damaged after they were written are set aside (kept in quarantine, reported), never handed to a
 * worker, and the records around them are delivered.
 */

const sandbox = useSandbox('read-back');

/** A storage that keeps no record in memory: each is read back from disk when reserved. */
async function openOnDisk(errors: Error[]) {
  return sandbox.open<Rec>({ [memoryBytesOption]: 0, onError: (error) => errors.push(error) });
}

/** The newest segment file's path, and where the payload of each of its APPEND frames is. */
async function payloadsOfNewest(): Promise<{ file: string; payloads: number[] }> {
  const names = await segmentFiles(sandbox.directory);
  const file = path.join(sandbox.directory, names[names.length - 1]!);
  return { file, payloads: (await frameOffsets(file)).payloads };
}

function quarantined(): string {
  return fs.readFileSync(path.join(sandbox.directory, 'quarantine.log'), 'latin1');
}

describe('FileStorage reading records back from disk', () => {
  it('a fresh record damaged on disk after it was written is set aside, not delivered; the others are', async () => {
    const errors: Error[] = [];
    const storage = await openOnDisk(errors);
    await storage.append([0, 1, 2, 3, 4].map(rec));
    const { file, payloads } = await payloadsOfNewest();
    // 'record 2' becomes 'secord 2': still JSON of the right shape, so only the checksum tells.
    const at = payloads[2]! + JSON.stringify(rec(2)).indexOf('record');
    await flipByte(file, at, 0x01);

    const batch = await storage.reserve(10, { now: T0 });
    expect(batch.map((entry) => entry.record)).toEqual([0, 1, 3, 4].map(rec));
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toBeInstanceOf(StorageError);
    expect(errors[0]?.message).toMatch(/damaged.*kept in .*quarantine\.log at offset 0/);
    const kept = quarantined();
    expect(kept).toContain('"reason":"unreadable"');
    expect(kept).toContain('"text":"secord 2"');
    // Counted out: nothing is left waiting for it.
    await storage.ack(batch);
    expect(storage.size()).toBe(0);
    expect(await storage.reserve(10, { now: T0 })).toEqual([]);
  });

  it('a record waiting for a retry, damaged on disk, is set aside when its group is read back; the rest of the group is delivered', async () => {
    const errors: Error[] = [];
    const storage = await openOnDisk(errors);
    await storage.append([0, 1, 2, 3].map(rec));
    const first = await storage.reserve(10, { now: T0 });
    await storage.release(first, T0 + 1000);
    const { file, payloads } = await payloadsOfNewest();
    const at = payloads[1]! + JSON.stringify(rec(1)).indexOf('record');
    await flipByte(file, at, 0x01);

    expect(await storage.reserve(10, { now: T0 })).toEqual([]);
    const retried = await storage.reserve(10, { now: T0 + 1000 });
    expect(retried.map((entry) => entry.record)).toEqual([0, 2, 3].map(rec));
    expect(retried.map((entry) => entry.deliveries)).toEqual([2, 2, 2]);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toMatch(
      /1 record\(s\) waiting for a retry.*kept in .*quarantine\.log at offset 0/,
    );
    expect(quarantined()).toContain('"text":"secord 1"');
    await storage.ack(retried);
    expect(storage.size()).toBe(0);
  });
});
