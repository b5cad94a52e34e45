import fs from 'node:fs/promises';
import { asError, StorageError, StorageFullError } from '../../core/errors.js';

/**
 * The journal's byte budget (`maxJournalBytes`): which appends fit, and who wants to know when
 * room is freed (after the disk or the budget refused an append, once acknowledged records let
 * segments go). MemoryStorage has no counterpart: this bounds bytes on disk, segment files as
 * allocated, and frees room a segment at a time, not a record at a time.
 */
export class JournalBudget {
  private readonly listeners = new Set<() => void>();
  /** An append was refused (budget or full disk) since listeners were last called. */
  private refused = false;

  constructor(
    readonly maxBytes: number | undefined,
    private readonly directory: string,
  ) {}

  /**
   * The error for an append of `bytes` that does not fit, the journal's frames taking `used`
   * bytes already; undefined when it fits.
   */
  refuse(used: number, bytes: number): StorageFullError | undefined {
    const max = this.maxBytes;
    if (max === undefined || used + bytes <= max) return undefined;
    this.refused = true;
    return new StorageFullError(
      `FileStorage journal in "${this.directory}" is full: maxJournalBytes is ${max} bytes, ${used} are in use, and an append of ${bytes} bytes does not fit; nothing of it was stored, and appends are accepted again once acknowledged records free segments`,
      this.directory,
    );
  }

  /** The disk refused a write: room will be news too. */
  noteRefusal(): void {
    this.refused = true;
  }

  /** Calls `listener` when room may have been freed after a refusal; returns a remover. */
  watch(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Segments were retired: tells the listeners, if an append was refused since last time. */
  freed(onError: (error: Error) => void): void {
    if (!this.refused) return;
    this.refused = false;
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (error) {
        onError(
          new StorageError(`FileStorage watchRoom listener threw: ${asError(error).message}`, {
            cause: error,
          }),
        );
      }
    }
  }

  /**
   * Free bytes on the directory's file system (for an unprivileged process), and a warning when
   * the budget has more room left than the disk.
   */
  async checkDisk(journalBytes: number): Promise<{ free: number; warning?: StorageError }> {
    const stats = await fs.statfs(this.directory);
    const free = stats.bavail * stats.bsize;
    const max = this.maxBytes;
    if (max === undefined || max - journalBytes <= free) return { free };
    return {
      free,
      warning: new StorageError(
        `FileStorage journal in "${this.directory}" may not reach its budget: maxJournalBytes leaves room for ${max - journalBytes} more bytes, but the file system has ${free} free; appends will be refused with StorageFullError when the disk fills first`,
      ),
    };
  }
}
