import fs from 'node:fs/promises';
import path from 'node:path';
import { StorageError } from '../../core/errors.js';
import {
  ID_FILE,
  idText,
  newIdentity,
  readIdentity,
  type DirectoryIdentity,
} from './directory-id.js';
import {
  currentKind,
  decodeHeader,
  HEADER_BYTES,
  LEGACY_VERSION,
  legacyKind,
  parseSegmentName,
  parseSpareName,
  segmentName,
  type HeaderRead,
  type SegmentHeader,
  type SegmentKind,
} from './journal-format.js';
import { JournalReplay } from './journal-replay.js';
import { Quarantine } from './quarantine.js';
import type { IgnoredFile, JournalDamage, RecoveryReport } from './recovery-report.js';
import { readSafely, UntrustedFileError } from './safe-files.js';
import { readHead, readSegment } from './segment-repair.js';
import { SegmentTable, type FoundSegment } from './segment-table.js';

/** What replaying a journal directory found. */
export interface RecoveredJournal {
  /** The segments kept, with how many live records each holds and where its frames end. */
  readonly segments: SegmentTable;
  /** What waits, as the replay left it (fresh records, retry groups, deliveries). */
  readonly replay: JournalReplay;
  /** Spare files (dead segments kept for reuse), by name; they hold no records. */
  readonly spares: string[];
  readonly identity: DirectoryIdentity;
  readonly nextId: number;
  /** Above every segment's and every spare's sequence, so no stale frame can carry its tag. */
  readonly nextSequence: number;
  /** The newest segment's sequence (the `previous` of the next one); 0 for none. */
  readonly lastSequence: number;
  readonly report: Omit<RecoveryReport, 'directory' | 'durationMs' | 'journalBytes' | 'freeBytes'>;
}

/** A segment file as found, with what its header says; its frames are read later. */
interface SegmentFile {
  readonly name: string;
  readonly nameSequence: number;
  readonly size: number;
  readonly header: HeaderRead;
}

/** A file taken as (a copy of) segment `sequence`. */
interface Member {
  readonly file: SegmentFile;
  readonly sequence: number;
  readonly kind: SegmentKind;
  readonly header: SegmentHeader | undefined;
}

/**
 * Reads the journal, salvage first: damaged bytes are skipped (reading goes on at the next
 * trusted frame), copied to the quarantine file, and only then cut off or overwritten (see
 * `JournalDamage`). Files that are not this directory's are not replayed: a segment with another
 * directory id is moved to quarantine, a link or another user's file is left alone; both are
 * reported. Gaps in the sequence (a segment missing in the middle) are reported. Only a segment
 * of a newer format refuses the open, before anything is changed.
 *
 * Streaming: segment headers first, then one segment at a time, newest first (see
 * `JournalReplay`), so that memory holds one segment's bytes and a few bits per record, however
 * many records the journal holds.
 */
export async function recoverJournal(
  directory: string,
  quarantine: Quarantine,
): Promise<RecoveredJournal> {
  const ignored: IgnoredFile[] = [];
  const names = (await fs.readdir(directory)).sort();
  const spares: string[] = [];
  let maxSequence = 0;
  const files: SegmentFile[] = [];
  for (const name of names) {
    const spare = parseSpareName(name);
    const sequence = parseSegmentName(name);
    maxSequence = Math.max(maxSequence, sequence ?? spare ?? 0);
    if (spare !== undefined) {
      if (await isOwnFile(path.join(directory, name), ignored)) spares.push(name);
      continue;
    }
    if (sequence === undefined) continue;
    try {
      const { head, size } = await readHead(path.join(directory, name), HEADER_BYTES);
      files.push({ name, nameSequence: sequence, size, header: decodeHeader(head) });
    } catch (error) {
      if (!(error instanceof UntrustedFileError)) throw error;
      ignored.push({ file: name, reason: 'untrusted', detail: error.why });
    }
  }
  for (const file of files) {
    if (file.header.kind === 'other-version') {
      throw new StorageError(
        `FileStorage cannot read ${path.join(directory, file.name)}: it was written in journal format version ${file.header.version}, this version reads 3 (and 2)`,
      );
    }
  }

  const { identity, state } = await findIdentity(directory, files, quarantine, ignored);
  const members = new Map<number, Member[]>();
  let legacySegments = 0;
  for (const file of files) {
    const member = await classify(file, identity, quarantine, ignored);
    if (!member) continue;
    if (member.kind.version === LEGACY_VERSION) legacySegments++;
    maxSequence = Math.max(maxSequence, member.sequence);
    const group = members.get(member.sequence);
    if (group) group.push(member);
    else members.set(member.sequence, [member]);
  }

  const damage: JournalDamage[] = [];
  const sequences = [...members.keys()].sort((a, b) => a - b);
  const newest = sequences[sequences.length - 1];
  if (newest !== undefined) {
    const group = members.get(newest) as Member[];
    if (group.length === 1 && isTornCreation(group[0]!)) {
      damage.push(...(await dropTornSegment(directory, group[0]!, quarantine)));
      sequences.pop();
    }
  }
  // The file named after the sequence is the segment; others are copies of it.
  for (const sequence of sequences)
    (members.get(sequence) as Member[]).sort((a, b) => rank(a) - rank(b));
  const missing: string[] = [];
  let idFloor = identity.idFloor;
  let lastSequence = 0;
  for (const sequence of sequences) {
    const primary = (members.get(sequence) as Member[])[0] as Member;
    const previous = primary.header?.previous ?? 0;
    if (lastSequence > 0 && previous > lastSequence) missing.push(segmentName(previous));
    if (primary.header) idFloor = Math.max(idFloor, primary.header.idFloor);
    lastSequence = sequence;
  }

  const replay = new JournalReplay();
  const found: { sequence: number; kind: SegmentKind; segment: FoundSegment }[] = [];
  let framesRecovered = 0;
  let framesSkipped = 0;
  // One buffer for every segment, as large as the largest: segments are read one at a time.
  let buffer = Buffer.alloc(0);
  for (const sequence of [...sequences].reverse()) {
    const group = members.get(sequence) as Member[];
    const files = group.map((member) => ({
      name: member.file.name,
      kind: member.kind,
      headerDamaged: member.file.header.kind === 'damaged',
    }));
    if (buffer.length < group[0]!.file.size) {
      buffer = Buffer.allocUnsafe(group[0]!.file.size);
    }
    const read = await readSegment(directory, sequence, files, quarantine, identity, buffer);
    framesRecovered += read.frames.length / 2;
    framesSkipped += read.skipped;
    damage.push(...read.damage);
    const primary = group[0]!;
    const replayed = await replay.segment(sequence, primary.kind, read.data, read.frames);
    found.push({
      sequence,
      kind: primary.kind,
      segment: {
        file: primary.file.name,
        copies: group.slice(1).map((member) => member.file.name),
        written: replayed.written,
        live: replayed.live,
        end: read.end,
      },
    });
  }
  replay.finish();
  const segments = new SegmentTable();
  for (const { sequence, kind, segment } of found.reverse()) segments.add(sequence, kind, segment);
  damage.sort((a, b) =>
    a.segment < b.segment ? -1 : a.segment > b.segment ? 1 : a.offset - b.offset,
  );

  const records = replay.records;
  return {
    segments,
    replay,
    spares,
    identity: { ...identity, idFloor: Math.max(idFloor, replay.nextId) },
    nextId: Math.max(idFloor, replay.nextId),
    nextSequence: maxSequence + 1,
    lastSequence,
    report: {
      directoryId: idText(identity),
      segments: files.length,
      records,
      retries: replay.retries,
      framesRecovered,
      framesSkipped,
      bytesQuarantined: quarantine.bytesKept,
      missing,
      segmentsMissing: missing.length,
      damage,
      ignored,
      identity: state,
      legacySegments,
    },
  };
}

/** The file named after its sequence first. */
function rank(member: Member): number {
  return member.file.nameSequence === member.sequence ? 0 : 1;
}

/** Whether a file is a regular file of ours with one name; reports it otherwise. */
async function isOwnFile(file: string, ignored: IgnoredFile[]): Promise<boolean> {
  const stat = await fs.lstat(file);
  const uid = process.geteuid?.();
  let why: string | undefined;
  if (stat.isSymbolicLink()) why = 'it is a symbolic link';
  else if (!stat.isFile()) why = 'it is not a regular file';
  else if (uid !== undefined && stat.uid !== uid) why = `it is owned by uid ${stat.uid}`;
  else if (stat.nlink !== 1) why = `it has ${stat.nlink} names (hard links)`;
  if (why) ignored.push({ file: path.basename(file), reason: 'untrusted', detail: why });
  return why === undefined;
}

/**
 * The directory's identity: its id file; or, when that is missing or damaged, the id in its
 * newest segment header; or a new one. A directory of format-2 segments and no id file is one
 * BufIO 0.2.0 wrote: its segments are its own (`legacyBelow`).
 */
async function findIdentity(
  directory: string,
  files: readonly SegmentFile[],
  quarantine: Quarantine,
  ignored: IgnoredFile[],
): Promise<{ identity: DirectoryIdentity; state: RecoveryReport['identity'] }> {
  const found = await readIdentity(directory);
  if (typeof found === 'object') return { identity: found, state: 'read' };
  if (found === 'damaged') {
    const stat = await fs.lstat(path.join(directory, ID_FILE));
    const moved = await quarantine.moveFile(ID_FILE, stat.size);
    ignored.push({
      file: ID_FILE,
      reason: 'foreign',
      detail: 'damaged id file',
      quarantined: moved,
    });
  }
  let newest: SegmentHeader | undefined;
  let legacyBelow = 0;
  for (const file of files) {
    const header = file.header;
    if (header.kind === 'current' && header.header.sequence >= (newest?.sequence ?? 0)) {
      newest = header.header;
    }
    if (header.kind === 'legacy' && header.sequence === file.nameSequence) {
      legacyBelow = Math.max(legacyBelow, header.sequence + 1);
    }
  }
  if (newest) {
    return {
      identity: { id: newest.directoryId, idFloor: 0, legacyBelow },
      state: 'rebuilt',
    };
  }
  return { identity: newIdentity(legacyBelow), state: found === 'damaged' ? 'rebuilt' : 'created' };
}

/** Which segment a file is, or undefined (reported, and moved away) when it is not ours. */
async function classify(
  file: SegmentFile,
  identity: DirectoryIdentity,
  quarantine: Quarantine,
  ignored: IgnoredFile[],
): Promise<Member | undefined> {
  const { header } = file;
  let detail: string | undefined;
  if (header.kind === 'current') {
    if (header.header.directoryId.equals(identity.id)) {
      const sequence = header.header.sequence;
      return { file, sequence, kind: currentKind(sequence, identity.id), header: header.header };
    }
    detail = `its header names directory id ${header.header.directoryId.toString('hex')}, not this directory's ${idText(identity)}`;
  } else if (header.kind === 'legacy') {
    if (header.sequence === file.nameSequence && header.sequence < identity.legacyBelow) {
      return {
        file,
        sequence: header.sequence,
        kind: legacyKind(header.sequence),
        header: undefined,
      };
    }
    detail = 'a format-2 segment that was not in the directory when it was upgraded';
  } else {
    const sequence = file.nameSequence;
    const kind =
      sequence < identity.legacyBelow ? legacyKind(sequence) : currentKind(sequence, identity.id);
    return { file, sequence, kind, header: undefined };
  }
  const moved = await quarantine.moveFile(file.name, file.size);
  ignored.push({ file: file.name, reason: 'foreign', detail, quarantined: moved });
  return undefined;
}

/** The newest segment, killed while its header was being written: no frame can be in it. */
function isTornCreation(member: Member): boolean {
  return member.file.header.kind === 'damaged' && member.file.size < member.kind.headerBytes;
}

/** Removes a segment torn at its creation; its bytes, if any, go to quarantine first. */
async function dropTornSegment(
  directory: string,
  member: Member,
  quarantine: Quarantine,
): Promise<JournalDamage[]> {
  const { name } = member.file;
  const data = await readSafely(path.join(directory, name));
  const damage: JournalDamage[] = [];
  if (data.length > 0) {
    const [quarantined] = await quarantine.keep([
      { source: name, offset: 0, reason: 'incomplete', bytes: data },
    ]);
    damage.push({
      segment: name,
      offset: 0,
      bytes: data.length,
      reason: 'incomplete',
      repair: 'cut',
      quarantined: quarantined as string,
    });
  }
  await fs.unlink(path.join(directory, name));
  return damage;
}
