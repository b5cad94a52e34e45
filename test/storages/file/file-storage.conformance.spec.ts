import { describe, it } from '@jest/globals';
import type { Storage } from '../../../lib/core/storage.js';
import { FileStorage, type FileStorageOptions } from '../../../lib/storages/file/index.js';
import { abandonStorage } from '../../../lib/storages/file/file-storage.js';
import { memoryBytesOption } from '../../../lib/storages/file/file-storage-options.js';
import { describeStorageConformance, type ConformanceRecord } from '../../../lib/testing/index.js';
import { removeDir, tempDir } from './support.js';

type Options = Omit<FileStorageOptions<ConformanceRecord>, 'directory'> & {
  [memoryBytesOption]?: number;
};

/** The text of the record `plantUnreadable` stores: the serializer below cannot read it back. */
const PLANTED = 'planted: the serializer cannot read this back';

/**
 * JSON, except that the planted record does not deserialize, as a record written by an older
 * serializer, or whose text was damaged, would not.
 */
const serializer = {
  serialize: (record: ConformanceRecord): string => JSON.stringify(record),
  deserialize: (text: string): ConformanceRecord => {
    const record = JSON.parse(text) as ConformanceRecord;
    if (record.text === PLANTED) throw new SyntaxError('unexpected record shape');
    return record;
  },
};

/**
 * Runs the suite over a directory per test. `reopen` opens a new instance on the same directory;
 * a crash is simulated by abandoning the old instance: its queued writes are dropped and its
 * files closed, but its lock file stays, naming this (live) process, as after a crash and a
 * restart that got the same pid. The new instance must take that lock over.
 */
function register(name: string, options: Options): void {
  const directories = new Map<Storage<ConformanceRecord>, string>();
  describeStorageConformance(
    name,
    {
      async create() {
        const storage = new FileStorage<ConformanceRecord>({
          ...options,
          serializer,
          onError: () => undefined,
          directory: await tempDir('conformance'),
        });
        directories.set(storage, storage.directory);
        return storage;
      },
      async reopen(previous, crashed) {
        const directory = directories.get(previous) as string;
        if (crashed) await (previous as FileStorage<ConformanceRecord>)[abandonStorage]();
        const next = new FileStorage<ConformanceRecord>({
          ...options,
          serializer,
          onError: () => undefined,
          directory,
        });
        directories.set(next, directory);
        return next;
      },
      async destroy(storages) {
        for (const storage of storages) await storage.close();
        for (const directory of new Set(storages.map((s) => directories.get(s)))) {
          if (directory) await removeDir(directory);
        }
        for (const storage of storages) directories.delete(storage);
      },
      async plantUnreadable(storage) {
        await storage.append([{ n: -1, text: PLANTED }]);
      },
      leaseWaitMs: 1000,
    },
    { describe, it },
  );
}

register('FileStorage', {});
register('FileStorage (durability none, 1 KiB segments)', {
  durability: 'none',
  segmentBytes: 1024,
});
// Nothing kept in memory: every record waits on disk only and is read back when reserved, as in
// a backlog far larger than memory.
register('FileStorage (records read back from disk)', {
  [memoryBytesOption]: 0,
  segmentBytes: 2048,
});
