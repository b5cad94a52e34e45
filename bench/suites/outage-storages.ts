import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Storage } from '../../lib/index.js';
import { FileStorage } from '../../lib/storages/file/index.js';
import type { BenchRecord } from '../records.js';

/** What the outage suite pushes: a bench record with a note, about 100 bytes of JSON. */
export interface OutageRecord extends BenchRecord {
  readonly note: string;
}

/**
 * A storage the outage suite runs over (`bench/suites/outage.ts`). The suite runs each scenario in
 * a child process (`bench/probes/outage-run.ts`), which calls `open` there; the suite itself calls
 * `available` and `cleanup`. To add a storage, add one of these to `OUTAGE_STORAGES`.
 */
export interface OutageStorage {
  /** As it appears in the tables, e.g. `'FileStorage'`. */
  readonly name: string;
  /** Records pushed during the outage: the full run, and `--quick`. */
  readonly records: { readonly full: number; readonly quick: number };
  /**
   * Whether the suite kills the process holding the backlog (SIGKILL) and times the reopen: for a
   * storage of one process, whose records are read back at open.
   */
  readonly reopens: boolean;
  /** Undefined when the storage can run here; otherwise why not (a service is down). */
  available(): Promise<string | undefined>;
  /** The storage of run `tag` (its own directory, key prefix or table), in the child process. */
  open(tag: string): Promise<Storage<OutageRecord>>;
  /** Removes what run `tag` left. */
  cleanup(tag: string): Promise<void>;
}

/** Bench directories go under here: `BUFIO_BENCH_DIR`, else the system's temp directory. */
const ROOT = process.env.BUFIO_BENCH_DIR ?? os.tmpdir();
const fileDirectory = (tag: string): string => path.join(ROOT, `bufio-bench-outage-${tag}`);

const fileStorage: OutageStorage = {
  name: 'FileStorage',
  records: { full: 10_000_000, quick: 200_000 },
  reopens: true,
  available: () => Promise.resolve(undefined),
  open: (tag) =>
    FileStorage.open<OutageRecord>({ directory: fileDirectory(tag), durability: 'fsync' }),
  cleanup: (tag) => fs.rm(fileDirectory(tag), { recursive: true, force: true }),
};

export const OUTAGE_STORAGES: readonly OutageStorage[] = [fileStorage];
