import fs from 'node:fs';
import path from 'node:path';
import { closeFd, datasync, isErrno, sizeOf, unlinkIfPresent, writeFully } from './file-io.js';
import { HEADER_BYTES, spareName } from './journal-format.js';
import { FRAME_HEAD_BYTES } from './journal-frames.js';
import { openSafely, UntrustedFileError } from './safe-files.js';

/** With durability `'fsync'`, up to this many dead segment files are kept to serve again. */
export const MAX_SPARES = 2;

/**
 * Dead segment files kept to serve as new segments (`spare-<sequence>.log`), with durability
 * `'fsync'`: a sync into space that exists already is cheaper than one that grows a file.
 */
export class SpareFiles {
  private readonly names: string[] = [];
  private readonly sizes = new Map<string, number>();
  /** Bytes of the spare files. */
  bytes = 0;

  constructor(
    private readonly directory: string,
    /** Whether spares are kept at all. */
    readonly keeps: boolean,
  ) {}

  get count(): number {
    return this.names.length;
  }

  /** Takes the spares found at open: up to `MAX_SPARES` when kept; the others are removed. */
  async adopt(found: readonly string[]): Promise<boolean> {
    let removed = false;
    for (const name of found) {
      if (this.keeps && this.names.length < MAX_SPARES) {
        this.names.push(name);
      } else {
        await unlinkIfPresent(path.join(this.directory, name));
        removed = true;
      }
    }
    return removed;
  }

  /** Measures the spares (found at open, or kept since). */
  async measure(): Promise<void> {
    this.bytes = 0;
    for (const name of this.names) {
      const size = await sizeOf(path.join(this.directory, name));
      this.sizes.set(name, size);
      this.bytes += size;
    }
  }

  /** Keeps the file of dead segment `sequence` (of `size` bytes) as a spare. */
  async keep(file: string, sequence: number, size: number): Promise<void> {
    const name = spareName(sequence);
    await fs.promises.rename(file, path.join(this.directory, name));
    this.names.push(name);
    this.sizes.set(name, size);
    this.bytes += size;
  }

  /** Removes the newest spare. */
  async drop(): Promise<void> {
    const name = this.names.pop();
    if (name === undefined) return;
    this.forget(name);
    await unlinkIfPresent(path.join(this.directory, name));
  }

  /**
   * The oldest usable spare, renamed to `name` with `header`, or undefined. Its old contents are
   * made unreadable as the new segment first: the new header (whose sequence gives its frames a
   * tag none of the old frames has), and zeros over its last bytes, so that a frame head cut
   * short by the end of the file is never made of old bytes. Synced before the rename.
   */
  async reuse(
    header: Buffer,
    name: string,
  ): Promise<{ fd: number; allocated: number } | undefined> {
    for (let spare = this.names.shift(); spare !== undefined; spare = this.names.shift()) {
      this.forget(spare);
      let opened: { fd: number; size: number };
      try {
        opened = await openSafely(path.join(this.directory, spare), 'update');
      } catch (error) {
        // Planted or gone since the open: not ours to write into.
        if (error instanceof UntrustedFileError || isErrno(error, 'ENOENT')) continue;
        throw error;
      }
      const { fd } = opened;
      try {
        const size = Math.max(opened.size, HEADER_BYTES);
        await writeFully(fd, header, HEADER_BYTES, 0);
        const tail = Math.max(HEADER_BYTES, size - FRAME_HEAD_BYTES);
        if (size > tail) await writeFully(fd, Buffer.alloc(size - tail), size - tail, tail);
        await datasync(fd);
        await fs.promises.rename(path.join(this.directory, spare), path.join(this.directory, name));
        return { fd, allocated: size };
      } catch (error) {
        await closeFd(fd).catch(() => undefined);
        throw error;
      }
    }
    return undefined;
  }

  private forget(name: string): void {
    this.bytes -= this.sizes.get(name) ?? 0;
    this.sizes.delete(name);
  }
}
