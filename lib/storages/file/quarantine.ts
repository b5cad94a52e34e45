import fs from 'node:fs/promises';
import path from 'node:path';
import { closeFd, datasync, syncDirectory, writeFully } from './file-io.js';
import { openSafely, UntrustedFileError } from './safe-files.js';

/** The file, in the journal directory, that keeps bytes the storage could not use. */
export const QUARANTINE_FILE = 'quarantine.log';

/** What `QUARANTINE_FILE` becomes when it is full: the older entries, until the next rotation. */
export const ROTATED_QUARANTINE_FILE = 'quarantine.1.log';

/** Bytes to keep, and where they came from. */
export interface QuarantineEntry {
  /** The file they were read from, within the directory. */
  readonly source: string;
  /** Where in that file they start. */
  readonly offset: number;
  readonly reason: string;
  /** The record they were, when known. */
  readonly id?: number;
  readonly bytes: Uint8Array;
}

/**
 * Keeps what the storage cannot use, before anything of it is cut or removed: damaged byte ranges
 * and unreadable records are appended to `quarantine.log`, each entry a line
 * `BUFIO-QUARANTINE <JSON: source, offset, bytes, reason, id, at>` followed by the raw bytes and a
 * newline; whole files that are not this journal's (another directory's segment, a duplicate)
 * are renamed `quarantine-<name>-<time>`. Written and synced before the caller goes on.
 *
 * Bounded: entries that would take `quarantine.log` past `maxBytes` go to a new one, and the full
 * one becomes `quarantine.1.log`, replacing the one before. So the directory keeps the latest
 * damage, up to about twice `maxBytes` (more only when one call keeps more than that: a call's
 * entries are never split), however often damage recurs over the journal's life; what rotation
 * drops is older than anything still reported in a recovery report of this process.
 */
export class Quarantine {
  readonly file: string;
  /** Bytes kept so far by this instance. */
  bytesKept = 0;

  constructor(
    private readonly directory: string,
    private readonly maxBytes: number,
  ) {
    this.file = path.join(directory, QUARANTINE_FILE);
  }

  /** Appends the entries; returns where each one is, as `"<file> at offset <n>"`. */
  async keep(entries: readonly QuarantineEntry[]): Promise<string[]> {
    if (entries.length === 0) return [];
    const parts: Buffer[] = [];
    const starts: number[] = [];
    let length = 0;
    for (const entry of entries) {
      const head = Buffer.from(
        `BUFIO-QUARANTINE ${JSON.stringify({
          source: entry.source,
          offset: entry.offset,
          bytes: entry.bytes.length,
          reason: entry.reason,
          ...(entry.id === undefined ? {} : { id: entry.id }),
          at: new Date().toISOString(),
        })}\n`,
      );
      starts.push(length);
      parts.push(head, Buffer.from(entry.bytes), Buffer.from('\n'));
      length += head.length + entry.bytes.length + 1;
    }
    const data = Buffer.concat(parts);
    let { fd, size } = await this.openFile();
    try {
      if (size > 0 && size + data.length > this.maxBytes) {
        await closeFd(fd);
        fd = -1;
        await this.rotate();
        ({ fd, size } = await this.openFile());
      }
      await writeFully(fd, data, data.length, size);
      await datasync(fd);
    } finally {
      if (fd >= 0) await closeFd(fd);
    }
    for (const entry of entries) this.bytesKept += entry.bytes.length;
    return starts.map((start) => `${this.file} at offset ${size + start}`);
  }

  /** Makes the full quarantine file the rotated one (synced), so that the next open starts anew. */
  private async rotate(): Promise<void> {
    await fs.rename(this.file, path.join(this.directory, ROTATED_QUARANTINE_FILE));
    await syncDirectory(this.directory);
  }

  /** Opens the quarantine file; something planted under its name is moved aside first. */
  private async openFile(): Promise<{ fd: number; size: number }> {
    try {
      return await openSafely(this.file, 'append');
    } catch (error) {
      if (!(error instanceof UntrustedFileError)) throw error;
      await fs.rename(this.file, `${this.file}.untrusted-${Date.now()}`);
      return openSafely(this.file, 'append');
    }
  }

  /** Renames a whole file out of the journal's names; returns its new path. */
  async moveFile(name: string, sizeBytes: number): Promise<string> {
    const target = path.join(this.directory, `quarantine-${name}-${Date.now()}`);
    await fs.rename(path.join(this.directory, name), target);
    await syncDirectory(this.directory);
    this.bytesKept += sizeBytes;
    return target;
  }
}
