import fs from 'node:fs/promises';
import path from 'node:path';
import { closeFd, datasync, syncDirectory, writeFully } from './file-io.js';
import { openSafely, UntrustedFileError } from './safe-files.js';

/** The file, in the journal directory, that keeps bytes the storage could not use. */
export const QUARANTINE_FILE = 'quarantine.log';

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
 */
export class Quarantine {
  readonly file: string;
  /** Bytes kept so far by this instance. */
  bytesKept = 0;

  constructor(private readonly directory: string) {
    this.file = path.join(directory, QUARANTINE_FILE);
  }

  /** Appends the entries; returns where each one is, as `"<file> at offset <n>"`. */
  async keep(entries: readonly QuarantineEntry[]): Promise<string[]> {
    if (entries.length === 0) return [];
    const { fd, size } = await this.openFile();
    const locations: string[] = [];
    try {
      const parts: Buffer[] = [];
      let at = size;
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
        locations.push(`${this.file} at offset ${at}`);
        parts.push(head, Buffer.from(entry.bytes), Buffer.from('\n'));
        at += head.length + entry.bytes.length + 1;
      }
      const data = Buffer.concat(parts);
      await writeFully(fd, data, data.length, size);
      await datasync(fd);
    } finally {
      await closeFd(fd);
    }
    for (const entry of entries) this.bytesKept += entry.bytes.length;
    return locations;
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
