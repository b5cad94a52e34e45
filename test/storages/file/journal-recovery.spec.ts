import { describe, expect, it, jest } from '@jest/globals';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FileStorage, type RecoveryReport } from '../../../lib/storages/file/index.js';
import { crc32 } from '../../../lib/storages/file/crc32.js';
import { flipByte, frameOffsets, segmentFiles, tempDir, useSandbox } from './support.js';

interface Rec {
  readonly n: number;
  readonly text: string;
}

const rec = (n: number): Rec => ({ n, text: `record number ${n}` });
const T0 = 1_700_000_000_000;

const sandbox = useSandbox('recovery');

/** Writes records 0..count-1, one append each (one frame each), and closes. */
async function writeRecords(count: number, segmentBytes?: number): Promise<void> {
  const storage = new FileStorage<Rec>({ directory: sandbox.directory, segmentBytes });
  for (let n = 0; n < count; n++) await storage.append([rec(n)]);
  await storage.close();
}

/** Opens the sandbox.directory again, collecting the recovery report, and drains every record. */
async function reopen(): Promise<{ numbers: number[]; report: RecoveryReport }> {
  const reports: RecoveryReport[] = [];
  const storage = await FileStorage.open<Rec>({
    directory: sandbox.directory,
    segmentBytes: 1024,
    onRecovery: (r) => reports.push(r),
  });
  sandbox.track(storage);
  const batch = await storage.reserve(10_000, { now: Infinity });
  await storage.release(batch, T0);
  expect(reports).toHaveLength(1);
  expect(storage.recovery).toBe(reports[0]);
  return { numbers: batch.map((b) => b.record.n), report: reports[0]! };
}

async function lastSegment(): Promise<string> {
  const files = await segmentFiles(sandbox.directory);
  return path.join(sandbox.directory, files[files.length - 1]!);
}

/** The damage a report lists, without where its copy went. */
const cutsOf = (report: RecoveryReport): unknown[] =>
  report.damage.map(({ segment, offset, bytes, reason }) => ({ segment, offset, bytes, reason }));

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from }, (_, i) => from + i);

describe('FileStorage recovery', () => {
  it('crc32 matches the standard check value and continues over ranges', () => {
    const data = Buffer.from('123456789');
    expect(crc32(data)).toBe(0xcbf43926);
    expect(crc32(data, 4, 9, crc32(data, 0, 4))).toBe(0xcbf43926);
    const long = Buffer.from('x'.repeat(1000) + 'y');
    expect(crc32(long, 0, 1001)).not.toBe(crc32(Buffer.from('x'.repeat(1001))));
  });

  it('an intact journal replays every record, in order, and reports no cut', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(20);
    const { numbers, report } = await reopen();
    expect(numbers).toEqual(range(0, 20));
    expect(report).toMatchObject({
      records: 20,
      retries: 0,
      damage: [],
      framesSkipped: 0,
      bytesQuarantined: 0,
      segmentsMissing: 0,
      segments: 1,
    });
  });

  it('a write torn mid-record is cut off; every record before it is kept, in order', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(10);
    const file = await lastSegment();
    const { frames } = await frameOffsets(file);
    const lastFrame = frames[frames.length - 1]!;
    const size = (await fs.stat(file)).size;
    await fs.truncate(file, size - 5);

    const { numbers, report } = await reopen();
    expect(numbers).toEqual(range(0, 9));
    expect(cutsOf(report)).toEqual([
      {
        segment: path.basename(file),
        offset: lastFrame,
        bytes: size - 5 - lastFrame,
        reason: 'incomplete',
      },
    ]);
    // The torn bytes are gone from the file, so the next open finds a clean journal.
    expect((await fs.stat(file)).size).toBe(lastFrame);
  });

  it('a torn frame header (fewer than 8 bytes of the last frame) is cut too', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(5);
    const file = await lastSegment();
    const { frames } = await frameOffsets(file);
    const lastFrame = frames[frames.length - 1]!;
    await fs.truncate(file, lastFrame + 3);
    const { numbers, report } = await reopen();
    expect(numbers).toEqual(range(0, 4));
    expect(cutsOf(report)).toEqual([
      { segment: path.basename(file), offset: lastFrame, bytes: 3, reason: 'incomplete' },
    ]);
  });

  it('a flipped byte in the last record payload fails its checksum and is cut', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(10);
    const file = await lastSegment();
    const { frames, payloads } = await frameOffsets(file);
    const lastFrame = frames[frames.length - 1]!;
    const size = (await fs.stat(file)).size;
    const at = payloads[payloads.length - 1]! + 3;
    await flipByte(file, at, 0x20);

    const { numbers, report } = await reopen();
    expect(numbers).toEqual(range(0, 9));
    expect(cutsOf(report)).toEqual([
      {
        segment: path.basename(file),
        offset: lastFrame,
        bytes: size - lastFrame,
        reason: 'checksum',
      },
    ]);
  });

  it('a damaged checksum field is cut the same way', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(10);
    const file = await lastSegment();
    const { frames } = await frameOffsets(file);
    const lastFrame = frames[frames.length - 1]!;
    const size = (await fs.stat(file)).size;
    await flipByte(file, lastFrame + 5, 0xff);
    const { numbers, report } = await reopen();
    expect(numbers).toEqual(range(0, 9));
    expect(cutsOf(report)).toEqual([
      {
        segment: path.basename(file),
        offset: lastFrame,
        bytes: size - lastFrame,
        reason: 'checksum',
      },
    ]);
  });

  it('damage inside a segment costs the damaged record only: kept in quarantine, padded over, read cleanly after', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(10);
    const file = await lastSegment();
    const { frames, payloads } = await frameOffsets(file);
    await flipByte(file, payloads[5]!, 0x01);
    const data = await fs.readFile(file);
    const { numbers, report } = await reopen();
    expect(numbers).toEqual([0, 1, 2, 3, 4, 6, 7, 8, 9]);
    const bytes = frames[6]! - frames[5]!;
    expect(cutsOf(report)).toEqual([
      { segment: path.basename(file), offset: frames[5], bytes, reason: 'checksum' },
    ]);
    expect(report).toMatchObject({ framesSkipped: 1, bytesQuarantined: bytes, records: 9 });
    expect(report.damage[0]?.repair).toBe('padded');
    // The damaged frame's bytes, as they were, are in quarantine.
    const kept = await fs.readFile(path.join(sandbox.directory, 'quarantine.log'));
    const body = kept.subarray(kept.indexOf(0x0a) + 1, kept.length - 1);
    expect(body).toEqual(data.subarray(frames[5], frames[6]));
    await sandbox.closeAll();
    const again = await reopen();
    expect(again.report.damage).toEqual([]);
    expect(again.numbers).toEqual([0, 1, 2, 3, 4, 6, 7, 8, 9]);
  });

  it('with many segments, a torn last segment loses nothing from the earlier ones', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(120, 1024);
    const files = await segmentFiles(sandbox.directory);
    expect(files.length).toBeGreaterThan(3);
    const file = await lastSegment();
    const { frames } = await frameOffsets(file);
    const lastFrame = frames[frames.length - 1]!;
    await fs.truncate(file, lastFrame + 12);
    const { numbers, report } = await reopen();
    expect(numbers).toEqual(range(0, 119));
    expect(report.segments).toBe(files.length);
    expect(cutsOf(report)).toEqual([
      { segment: path.basename(file), offset: lastFrame, bytes: 12, reason: 'incomplete' },
    ]);
  });

  it('a newest segment torn before its header was complete is kept in quarantine, removed and reported', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(4);
    const torn = 'journal-000000000099.log';
    await fs.writeFile(path.join(sandbox.directory, torn), Buffer.from('BUF'), { mode: 0o600 });
    const { numbers, report } = await reopen();
    expect(numbers).toEqual(range(0, 4));
    expect(cutsOf(report)).toEqual([{ segment: torn, offset: 0, bytes: 3, reason: 'incomplete' }]);
    expect(report.damage[0]?.repair).toBe('cut');
    expect(await segmentFiles(sandbox.directory)).not.toContain(torn);
    const kept = await fs.readFile(path.join(sandbox.directory, 'quarantine.log'), 'latin1');
    expect(kept).toMatch(
      /^BUFIO-QUARANTINE \{"source":"journal-000000000099.log","offset":0,"bytes":3,"reason":"incomplete",.*\}\nBUF\n$/,
    );
  });

  it('an empty newest segment (killed right after creating it) is removed without a report', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(4);
    await fs.writeFile(path.join(sandbox.directory, 'journal-000000000099.log'), '', {
      mode: 0o600,
    });
    const { numbers, report } = await reopen();
    expect(numbers).toEqual(range(0, 4));
    expect(report.damage).toEqual([]);
    expect(await segmentFiles(sandbox.directory)).not.toContain('journal-000000000099.log');
  });

  it('a segment in the middle whose header is damaged keeps its frames, and its header is written anew', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(60, 1024);
    const names = await segmentFiles(sandbox.directory);
    const middle = path.join(sandbox.directory, names[1]!);
    await flipByte(middle, 10, 0x55);
    const { numbers, report } = await reopen();
    expect(numbers).toEqual(range(0, 60));
    expect(report.damage.map((d) => [d.segment, d.offset, d.reason, d.repair])).toEqual([
      [names[1], 0, 'header', 'header-rewritten'],
    ]);
    await sandbox.closeAll();
    expect((await reopen()).report.damage).toEqual([]);
  });

  it('records appended after a cut survive the next open, with no cut reported again', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(6);
    const file = await lastSegment();
    await fs.truncate(file, (await fs.stat(file)).size - 1);
    const first = await FileStorage.open<Rec>({
      directory: sandbox.directory,
      onRecovery: () => undefined,
    });
    expect(first.recovery?.damage).toHaveLength(1);
    await first.append([rec(100), rec(101)]);
    await first.close();
    const { numbers, report } = await reopen();
    expect(numbers).toEqual([0, 1, 2, 3, 4, 100, 101]);
    expect(cutsOf(report)).toEqual([]);
  });

  it('without onRecovery, a cut is reported as a process warning', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(3);
    const file = await lastSegment();
    await fs.truncate(file, (await fs.stat(file)).size - 2);
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    let messages: string[];
    try {
      const storage = await FileStorage.open<Rec>({ directory: sandbox.directory });
      sandbox.track(storage);
      expect(await storage.size()).toBe(2);
      messages = emitWarning.mock.calls.map((call) => String(call[0]));
    } finally {
      emitWarning.mockRestore();
    }
    const mine = messages.filter((message) =>
      message.includes('FileStorage found damage in journal'),
    );
    expect(mine).toHaveLength(1);
    expect(mine[0]).toContain(path.basename(file));
    expect(mine[0]).toContain('(incomplete)');
  });

  it('with onError and no onRecovery, a cut goes to onError; a throwing onRecovery too', async () => {
    sandbox.directory = await tempDir('recovery');
    await writeRecords(3);
    const file = await lastSegment();
    await fs.truncate(file, (await fs.stat(file)).size - 2);
    const errors: Error[] = [];
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const storage = await FileStorage.open<Rec>({
        directory: sandbox.directory,
        onError: (e) => errors.push(e),
      });
      await storage.append([rec(10)]);
      await storage.close();
      const next = await FileStorage.open<Rec>({
        directory: sandbox.directory,
        onError: (e) => errors.push(e),
        onRecovery: () => {
          throw new Error('listener bug');
        },
      });
      sandbox.track(next);
      expect(await next.size()).toBe(3);
      expect(emitWarning).not.toHaveBeenCalled();
    } finally {
      emitWarning.mockRestore();
    }
    expect(errors.map((e) => [e.name, (e as { code?: string }).code])).toEqual([
      ['StorageError', 'BUFIO_STORAGE_FAILED'],
      ['StorageError', 'BUFIO_STORAGE_FAILED'],
    ]);
    expect(errors[0]?.message).toMatch(
      new RegExp(`FileStorage found damage in journal .*${path.basename(file)}.*\\(incomplete\\)`),
    );
    expect(errors[1]?.message).toBe('FileStorage onRecovery listener threw: listener bug');
    expect(errors[1]?.cause).toEqual(new Error('listener bug'));
  });

  it('acknowledgements and releases are replayed: acked records stay gone, retries keep attempts', async () => {
    sandbox.directory = await tempDir('recovery');
    const storage = new FileStorage<Rec>({ directory: sandbox.directory });
    await storage.append(range(0, 10).map(rec));
    const batch = await storage.reserve(6, { now: T0 });
    await storage.ack(batch.slice(0, 3));
    await storage.release(batch.slice(3), T0 + 10_000);
    const again = await storage.reserve(10, { now: T0 + 10_000 });
    expect(again.map((b) => [b.record.n, b.attempts])).toEqual([
      [3, 1],
      [4, 1],
      [5, 1],
      [6, 0],
      [7, 0],
      [8, 0],
      [9, 0],
    ]);
    await storage.release(again.slice(0, 1), T0 + 20_000);
    await storage.close();

    const next = await FileStorage.open<Rec>({ directory: sandbox.directory });
    sandbox.track(next);
    expect(next.recovery).toMatchObject({ records: 7, retries: 3 });
    expect((await next.reserve(10, { now: T0 })).map((b) => b.record.n)).toEqual([6, 7, 8, 9]);
    const retries = await next.reserve(10, { now: T0 + 10_000 });
    expect(retries.map((b) => [b.record.n, b.attempts])).toEqual([
      [4, 1],
      [5, 1],
    ]);
    const last = await next.reserve(10, { now: T0 + 20_000 });
    expect(last.map((b) => [b.record.n, b.attempts])).toEqual([[3, 2]]);
  });
});
