import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import fs from 'node:fs/promises';
import path from 'node:path';
import { readIdentity } from '../../../lib/storages/file/directory-id.js';
import { abandonStorage } from '../../../lib/storages/file/file-storage.js';
import { FileStorage, type RecoveryReport } from '../../../lib/storages/file/index.js';
import {
  HEADER_BYTES,
  currentKind,
  decodeHeader,
  parseSegmentName,
  segmentName,
} from '../../../lib/storages/file/journal-format.js';
import { replayFrame } from '../../../lib/storages/file/journal-frames.js';
import { scanSegment } from '../../../lib/storages/file/segment-reader.js';
import { ignoreFrames, removeDir, segmentFiles, tempDir } from './support.js';

/*
 * Salvage-first recovery as a property: journals of known content, written by FileStorage itself
 * (appends, acknowledgements, releases, leases, carried records, several segments), closed or
 * abandoned as by a crash, then damaged at random: bytes flipped, files cut short, segments
 * deleted or copied under another name. Recovery must keep every record whose frames are intact
 * (compared as exact sets, with their content), invent none, and never throw.
 *
 * A frame counts as intact where a file still holds its bytes unchanged at its offset and the
 * file can be known as its segment: by an intact header, or by its name. The id file is not
 * damaged here (without it and without any intact header, a segment's frames cannot be told from
 * another directory's: that is the point of the directory id).
 */

interface Rec {
  readonly n: number;
  readonly pad: string;
}

/** One trusted frame of the journal as written, and what it says. */
interface Frame {
  readonly sequence: number;
  readonly at: number;
  readonly bytes: Buffer;
  /** Records it holds (APPEND, CARRY), by id, as text. */
  readonly holds: Map<number, string>;
  /** Ids it acknowledges. */
  readonly acks: number[];
}

type Damage =
  /** `where`: a byte position, modulo the file's length. */
  | { readonly kind: 'flip'; readonly file: number; readonly where: number; readonly xor: number }
  | { readonly kind: 'truncate'; readonly file: number; readonly where: number }
  | { readonly kind: 'delete'; readonly file: number }
  | { readonly kind: 'duplicate'; readonly file: number; readonly ahead: number };

interface Plan {
  readonly rounds: { appends: number; reserve: number; ackShare: number }[];
  readonly durability: 'fsync' | 'none';
  readonly crash: boolean;
  readonly damage: Damage[];
}

const roundArb = fc.record({
  appends: fc.integer({ min: 1, max: 25 }),
  reserve: fc.integer({ min: 0, max: 30 }),
  ackShare: fc.double({ min: 0, max: 1, noNaN: true }),
});

const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    file: fc.nat(),
    where: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({
    kind: fc.constant('truncate' as const),
    file: fc.nat(),
    where: fc.nat(),
  }),
  fc.record({ kind: fc.constant('delete' as const), file: fc.nat() }),
  fc.record({
    kind: fc.constant('duplicate' as const),
    file: fc.nat(),
    ahead: fc.integer({ min: 1, max: 50 }),
  }),
);

const planArb: fc.Arbitrary<Plan> = fc.record({
  rounds: fc.array(roundArb, { minLength: 1, maxLength: 8 }),
  durability: fc.constantFrom('fsync' as const, 'none' as const),
  crash: fc.boolean(),
  damage: fc.array(damageArb, { minLength: 1, maxLength: 5 }),
});

const T0 = 1_700_000_000_000;
/** Runs of the property; raise it with `BUFIO_PROPERTY_RUNS` for a deeper search. */
const RUNS = Number(process.env.BUFIO_PROPERTY_RUNS ?? 60);
const directories: string[] = [];

afterAll(async () => {
  for (const directory of directories) await removeDir(directory);
});

/** Writes a journal by `plan` with FileStorage; returns the records appended, by id. */
async function writeJournal(directory: string, plan: Plan): Promise<void> {
  const storage = await FileStorage.open<Rec>({
    directory,
    durability: plan.durability,
    segmentBytes: 1024,
    onError: () => undefined,
  });
  let n = 0;
  for (const [i, round] of plan.rounds.entries()) {
    const records = Array.from({ length: round.appends }, () => ({
      n: n++,
      pad: 'p'.repeat(n % 37),
    }));
    await storage.append(records);
    const batch = await storage.reserve(round.reserve, { now: T0 + i });
    const acked = Math.floor(batch.length * round.ackShare);
    await storage.ack(batch.slice(0, acked));
    // Releases with a delay, so that some records wait and get carried forward.
    await storage.release(batch.slice(acked), T0 + 1_000_000);
  }
  if (plan.crash) {
    // Let queued acknowledgements reach the file, then stop as a kill would.
    await new Promise((resolve) => setImmediate(resolve));
    await storage[abandonStorage]();
  } else {
    await storage.close();
  }
}

/** Every trusted frame in the directory's segments, as written. */
async function framesIn(directory: string): Promise<Frame[]> {
  const identity = await readIdentity(directory);
  if (typeof identity !== 'object') throw new Error('no id file');
  const frames: Frame[] = [];
  for (const name of await segmentFiles(directory)) {
    const data = await fs.readFile(path.join(directory, name));
    const sequence = parseSegmentName(name) as number;
    const kind = currentKind(sequence, identity.id);
    const scan = scanSegment(data, kind);
    expect(scan.damage).toEqual([]);
    for (let i = 0; i < scan.frames.length; i += 2) {
      const at = scan.frames[i]!;
      const end = scan.frames[i + 1]!;
      const holds = new Map<number, string>();
      const acks: number[] = [];
      const text = (offset: number, bytes: number): string =>
        data.toString('utf8', offset, offset + bytes);
      replayFrame(data, at, end, kind, {
        ...ignoreFrames,
        append: (id, offset, bytes) => void holds.set(id, text(offset, bytes)),
        carry: (state, offset, bytes) => void holds.set(state.id, text(offset, bytes)),
        ack: (first, count) => {
          for (let id = first; id < first + count; id++) acks.push(id);
        },
      });
      frames.push({ sequence, at, bytes: Buffer.from(data.subarray(at, end)), holds, acks });
    }
  }
  return frames;
}

/** Applies the damage to the segment files; returns nothing, the files tell. */
async function damage(directory: string, damages: readonly Damage[]): Promise<void> {
  for (const step of damages) {
    const names = await segmentFiles(directory);
    if (names.length === 0) return;
    const name = names[step.file % names.length]!;
    const file = path.join(directory, name);
    const data = await fs.readFile(file);
    switch (step.kind) {
      case 'flip': {
        if (data.length === 0) break;
        const at = step.where % data.length;
        data[at] = data[at]! ^ step.xor;
        await fs.writeFile(file, data);
        break;
      }
      case 'truncate':
        await fs.truncate(file, step.where % Math.max(1, data.length));
        break;
      case 'delete':
        await fs.unlink(file);
        break;
      case 'duplicate': {
        const last = parseSegmentName(names[names.length - 1]!) as number;
        await fs.writeFile(path.join(directory, segmentName(last + step.ahead)), data, {
          mode: 0o600,
        });
        break;
      }
    }
  }
}

/** The records whose frames are intact, by id (see the comment at the top). */
async function expectedRecords(
  directory: string,
  written: readonly Frame[],
): Promise<Map<number, string>> {
  const bySegment = new Map<number, Frame[]>();
  for (const frame of written) {
    const list = bySegment.get(frame.sequence);
    if (list) list.push(frame);
    else bySegment.set(frame.sequence, [frame]);
  }
  const intact = new Set<Frame>();
  for (const name of await segmentFiles(directory)) {
    const data = await fs.readFile(path.join(directory, name));
    const header = decodeHeader(data);
    const sequence =
      header.kind === 'current' ? header.header.sequence : (parseSegmentName(name) as number);
    for (const frame of bySegment.get(sequence) ?? []) {
      const end = frame.at + frame.bytes.length;
      if (end <= data.length && data.subarray(frame.at, end).equals(frame.bytes)) {
        intact.add(frame);
      }
    }
  }
  const present = new Map<number, string>();
  const acked = new Set<number>();
  for (const frame of intact) {
    for (const [id, text] of frame.holds) present.set(id, text);
    for (const id of frame.acks) acked.add(id);
  }
  for (const id of acked) present.delete(id);
  return present;
}

/** Opens the directory and reads every record it recovers, by id, as text. */
async function recovered(
  directory: string,
): Promise<{ records: Map<number, string>; report: RecoveryReport }> {
  const storage = await FileStorage.open<Rec>({ directory, onError: () => undefined });
  try {
    const batch = await storage.reserve(1_000_000, { now: Infinity });
    const records = new Map(
      batch.map((entry) => [entry.id as number, JSON.stringify(entry.record)]),
    );
    expect(records.size).toBe(batch.length);
    return { records, report: storage.recovery as RecoveryReport };
  } finally {
    await storage.close();
  }
}

describe('FileStorage recovery, as a property', () => {
  it(
    'keeps exactly the records whose frames are intact, invents none, and never throws',
    async () => {
      await fc.assert(
        fc.asyncProperty(planArb, async (plan) => {
          const directory = await tempDir('property');
          directories.push(directory);
          await writeJournal(directory, plan);
          const written = await framesIn(directory);
          await damage(directory, plan.damage);
          const expected = await expectedRecords(directory, written);

          const first = await recovered(directory);
          expect(first.records).toEqual(expected);
          expect(first.report.records).toBe(expected.size);
          // What recovery repaired keeps them: a second open finds the same records.
          const second = await recovered(directory);
          expect(second.records).toEqual(expected);
          await removeDir(directory);
        }),
        { numRuns: RUNS },
      );
    },
    Math.max(120_000, RUNS * 400),
  );

  it('a missing middle segment is reported by name; what the others hold is kept', async () => {
    const directory = await tempDir('property');
    directories.push(directory);
    const storage = await FileStorage.open<Rec>({ directory, segmentBytes: 1024 });
    for (let n = 0; n < 60; n++) await storage.append([{ n, pad: 'x'.repeat(20) }]);
    await storage.close();
    const names = await segmentFiles(directory);
    expect(names.length).toBeGreaterThanOrEqual(4);
    const written = await framesIn(directory);
    const gone = names[2]!;
    await fs.unlink(path.join(directory, gone));
    const expected = await expectedRecords(directory, written);
    const { records, report } = await recovered(directory);
    expect(records).toEqual(expected);
    expect(report).toMatchObject({ missing: [gone], segmentsMissing: 1 });
    expect(records.size).toBeLessThan(60);
    expect(HEADER_BYTES).toBe(56);
  });
});
