import { describe, it } from '@jest/globals';
import type { Storage } from '../../../lib/core/storage.js';
import { FileStorage, type FileStorageOptions } from '../../../lib/storages/file/index.js';
import { abandonStorage } from '../../../lib/storages/file/file-storage.js';
import { describeStorageConformance, type ConformanceRecord } from '../../../lib/testing/index.js';
import { removeDir, tempDir } from './file-test-support.js';

type Options = Omit<FileStorageOptions<ConformanceRecord>, 'directory'>;

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
          directory: await tempDir('conformance'),
        });
        directories.set(storage, storage.directory);
        return storage;
      },
      async reopen(previous, crashed) {
        const directory = directories.get(previous) as string;
        if (crashed) await (previous as FileStorage<ConformanceRecord>)[abandonStorage]();
        const next = new FileStorage<ConformanceRecord>({ ...options, directory });
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
