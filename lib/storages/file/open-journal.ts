import fs from 'node:fs/promises';
import nodePath from 'node:path';
import { writeIdentity, type DirectoryIdentity } from './directory-id.js';
import { DirectoryLock } from './directory-lock.js';
import type { ResolvedFileStorageOptions } from './file-storage-options.js';
import { JournalBudget } from './journal-budget.js';
import { recoverJournal } from './journal-recovery.js';
import { JournalWriter } from './journal-writer.js';
import { LiveIndex } from './live-index.js';
import { Quarantine } from './quarantine.js';
import { loadGroup } from './group-place.js';
import { RecordReader } from './record-reader.js';
import type { RecoveryReport } from './recovery-report.js';
import { checkDirectory, classifyFileError } from './safe-files.js';
import { syncDirectory, syncFile } from './file-io.js';
import { SegmentFiles } from './segment-files.js';
import { SegmentReads } from './segment-reads.js';
import type { Segment, SegmentTable } from './segment-table.js';

/** A journal directory, open: what `FileStorage` works with. */
export interface OpenJournal<T> {
  readonly directory: string;
  readonly lock: DirectoryLock;
  readonly identity: DirectoryIdentity;
  readonly index: LiveIndex;
  readonly files: SegmentFiles;
  readonly writer: JournalWriter;
  readonly reader: RecordReader<T>;
  readonly reads: SegmentReads;
  readonly budget: JournalBudget;
  readonly nextId: number;
  readonly report: RecoveryReport;
  /** Said at open and worth a warning (the budget does not fit on the disk). */
  readonly warnings: readonly Error[];
}

/** What the storage lends to the journal it opens. */
export interface JournalHost {
  /** Every record id issued so far is below this. */
  idFloor(): number;
  reportError(error: Error): void;
}

/**
 * Creates the directory if needed, checks it, locks it, replays the journal (streaming; see
 * `recoverJournal`) and sets up what reads and writes it.
 *
 * @throws UnsafeDirectoryError, StorageLockedError, StorageAccessError, StorageFullError.
 */
export async function openJournal<T>(
  path: string,
  options: ResolvedFileStorageOptions<T>,
  host: JournalHost,
): Promise<OpenJournal<T>> {
  const started = Date.now();
  let directory = path;
  let lock: DirectoryLock | undefined;
  try {
    const created = await fs.mkdir(path, { recursive: true, mode: 0o700 });
    if (created !== undefined) await fs.chmod(path, 0o700);
    directory = await fs.realpath(path);
    if (!options.allowUnsafeDirectory) await checkDirectory(directory);
    lock = await DirectoryLock.acquire(directory);
    const quarantine = new Quarantine(directory, options.maxQuarantineBytes);
    const journal = await recoverJournal(directory, quarantine);
    // The id, and the id floor, are on disk before any segment that carries them.
    await writeIdentity(directory, journal.identity);
    const { replay, segments } = journal;
    const files = new SegmentFiles({
      directory,
      durability: options.durability,
      segmentBytes: options.segmentBytes,
      directoryId: journal.identity.id,
      nextSequence: journal.nextSequence,
      lastSequence: journal.lastSequence,
      idFloor: host.idFloor,
      maxBytes: options.maxJournalBytes,
    });
    const reads = new SegmentReads(directory);
    const budget = new JournalBudget(options.maxJournalBytes, directory);
    const index = new LiveIndex(options.memoryBytes, {
      segments,
      reads,
      quarantine,
      deliveries: replay.deliveries,
      onLost: (error) => host.reportError(error),
    });
    const groups = {
      segments,
      reads,
      quarantine,
      index,
      deliveries: replay.deliveries,
      onError: host.reportError,
    };
    const writer = new JournalWriter(
      directory,
      options.durability === 'fsync',
      files,
      segments,
      index,
      {
        reads,
        loadGroup: (group) => loadGroup(group, groups),
        onRetired: () => budget.freed(host.reportError),
      },
    );
    await tidyRecovered(directory, files, segments, journal.spares);
    await files.measure(segments);

    if (replay.freshSegment >= 0) {
      index.fresh.addFound(
        replay.freshSegment,
        replay.freshOffset,
        replay.fresh.size,
        replay.fresh,
      );
    }
    for (const group of replay.groups) {
      const { segment, start, end, runs } = group;
      const place = [{ segment, start, end, runs }];
      index.retries.addFound(group.visibleAt, group.firstId, group.count, group.bytes, place);
    }

    const reader = new RecordReader<T>({
      directory,
      serializer: options.serializer,
      index,
      writer,
      segments,
      reads,
      quarantine,
      deliveries: replay.deliveries,
      onError: host.reportError,
    });
    const disk = await budget.checkDisk(files.journalBytes);
    const report: RecoveryReport = {
      directory,
      ...journal.report,
      journalBytes: files.journalBytes,
      freeBytes: disk.free,
      durationMs: Date.now() - started,
    };
    return {
      directory,
      lock,
      identity: journal.identity,
      index,
      files,
      writer,
      reader,
      reads,
      budget,
      nextId: journal.nextId,
      report,
      warnings: disk.warning ? [disk.warning] : [],
    };
  } catch (error) {
    await lock?.release().catch(() => undefined);
    const file = (error as { path?: unknown } | null)?.path;
    throw classifyFileError(error, typeof file === 'string' ? file : directory, 'open');
  }
}

/**
 * Takes the spares found at open and retires segments left dead by an earlier process. Their
 * records were acknowledged in later segments, which that process may not have synced: sync those
 * first.
 */
async function tidyRecovered(
  directory: string,
  files: SegmentFiles,
  segments: SegmentTable,
  spares: readonly string[],
): Promise<void> {
  let changed = await files.spares.adopt(spares);
  const dead: Segment[] = [];
  for (const segment of segments.values()) {
    if (segment.live > 0) break;
    dead.push(segment);
  }
  let i = 0;
  for (const segment of segments.values()) {
    if (dead.length > 0 && i++ >= dead.length) {
      await syncFile(nodePath.join(directory, segment.name));
    }
  }
  for (const segment of dead) {
    await files.retire(segment, segments);
    changed = true;
  }
  if (changed) await syncDirectory(directory);
}
