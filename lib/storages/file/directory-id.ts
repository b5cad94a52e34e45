import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { crc32 } from './crc32.js';
import {
  closeFd,
  datasync,
  isErrno,
  syncDirectory,
  unlinkIfPresent,
  writeFully,
} from './file-io.js';
import { DIRECTORY_ID_BYTES } from './journal-format.js';
import { openSafely, readSafely, UntrustedFileError } from './safe-files.js';
import fs from 'node:fs/promises';

/*
 * The id file, `journal.id`, names a journal directory: a random 16-byte id that every segment
 * header repeats (so that a segment another directory or another program wrote is not replayed),
 * and what must survive the journal being emptied:
 *
 *   "BUFIOD", u8 version (3), u8 0, 16 bytes the directory id, f64 LE the id floor (no record id
 *   below it will be issued again), f64 LE legacy-below (format-2 segments with a lower sequence
 *   were in the directory when it was first opened in format 3: they are its own), u32 LE CRC-32
 *   of the 40 bytes before.
 *
 * It is replaced whole (a new file renamed over it), never written in place.
 */

export const ID_FILE = 'journal.id';
const MAGIC = Buffer.from('BUFIOD\x03\x00', 'latin1');
const ID_FILE_BYTES = 44;

/** What the id file says. */
export interface DirectoryIdentity {
  readonly id: Buffer;
  readonly idFloor: number;
  readonly legacyBelow: number;
}

/** A new identity: a random id, nothing issued yet. */
export function newIdentity(legacyBelow: number): DirectoryIdentity {
  return { id: randomBytes(DIRECTORY_ID_BYTES), idFloor: 0, legacyBelow };
}

/** The id as text, for `idScope` and messages. */
export function idText(identity: DirectoryIdentity): string {
  return identity.id.toString('hex');
}

/** The identity in `directory`, `'missing'` without an id file, or `'damaged'`. */
export async function readIdentity(
  directory: string,
): Promise<DirectoryIdentity | 'missing' | 'damaged'> {
  let data: Buffer;
  try {
    data = await readSafely(path.join(directory, ID_FILE));
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return 'missing';
    // A link or a stranger's file under the name: not our id file.
    if (error instanceof UntrustedFileError) return 'damaged';
    throw error;
  }
  if (
    data.length !== ID_FILE_BYTES ||
    !data.subarray(0, MAGIC.length).equals(MAGIC) ||
    data.readUInt32LE(40) !== crc32(data, 0, 40)
  ) {
    return 'damaged';
  }
  return {
    id: Buffer.from(data.subarray(8, 8 + DIRECTORY_ID_BYTES)),
    idFloor: data.readDoubleLE(24),
    legacyBelow: data.readDoubleLE(32),
  };
}

/** Replaces the id file, on disk (synced, with the directory) before it resolves. */
export async function writeIdentity(directory: string, identity: DirectoryIdentity): Promise<void> {
  const data = Buffer.alloc(ID_FILE_BYTES);
  MAGIC.copy(data, 0);
  identity.id.copy(data, 8, 0, DIRECTORY_ID_BYTES);
  data.writeDoubleLE(identity.idFloor, 24);
  data.writeDoubleLE(identity.legacyBelow, 32);
  data.writeUInt32LE(crc32(data, 0, 40), 40);
  const temp = path.join(directory, `.${ID_FILE}.${randomBytes(6).toString('hex')}.tmp`);
  const { fd } = await openSafely(temp, 'create');
  try {
    await writeFully(fd, data, data.length, 0);
    await datasync(fd);
  } catch (error) {
    await closeFd(fd).catch(() => undefined);
    await unlinkIfPresent(temp);
    throw error;
  }
  await closeFd(fd);
  try {
    await fs.rename(temp, path.join(directory, ID_FILE));
  } catch (error) {
    await unlinkIfPresent(temp);
    throw error;
  }
  await syncDirectory(directory);
}
