/**
 * How many bytes of waiting records' text FileStorage keeps in memory as well as on disk, so
 * that a worker that keeps up never waits for a read: the newest fresh records, and retries just
 * released. Past it, records wait on disk only and are read back (sequentially, ahead of need)
 * when they are reserved, so memory follows what is in flight, not how many records wait.
 *
 * Not `ByteBudget` (shared with MemoryStorage, and used by `RecordReader` for `maxBytes`): that
 * one sizes one reserve's batch and is thrown away with it; this one is a running tally of what
 * the storage holds, raised and lowered as records enter and leave memory.
 */
export class MemoryBudget {
  /** Bytes of text held now. */
  used = 0;

  constructor(readonly limit: number) {}

  fits(bytes: number): boolean {
    return this.used + bytes <= this.limit;
  }
}
