import fs from 'node:fs';

/*
 * The few file calls the journal makes on its hot path, on raw descriptors with callbacks: lighter
 * than `FileHandle`, and a write can be positioned, so a failed one can be cut back off.
 */

/** Writes all of `buf[0, length)` at `position`, looping over short writes. */
export function writeFully(
  fd: number,
  buf: Buffer,
  length: number,
  position: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (): void => {
      fs.write(fd, buf, done, length - done, position + done, (error, written) => {
        if (error) return reject(error);
        done += written;
        if (done < length) step();
        else resolve();
      });
    };
    if (length === 0) resolve();
    else step();
  });
}

/** `writeFully`, blocking: for small writes, where a thread-pool round trip costs more. */
export function writeFullySync(fd: number, buf: Buffer, length: number, position: number): void {
  let done = 0;
  while (done < length) done += fs.writeSync(fd, buf, done, length - done, position + done);
}

export function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()));
  });
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.close(fd, (error) => (error ? reject(error) : resolve()));
  });
}

/** Makes a directory's entries (files created, renamed, removed) durable. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await fs.promises.open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a whole file to disk, by path. */
export async function syncFile(file: string): Promise<void> {
  const handle = await fs.promises.open(file, 'r+');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** Whether `error` is a system error with this code (duck-typed: errors may come from another realm). */
export function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

/** Opens a file and returns its raw descriptor. */
export function openFd(file: string, flags: string, mode?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(file, flags, mode, (error, fd) => (error ? reject(error) : resolve(fd)));
  });
}

export function fileSize(fd: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats.size)));
  });
}

export function truncateFd(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.ftruncate(fd, length, (error) => (error ? reject(error) : resolve()));
  });
}

/** Removes a file; one already gone is fine. */
export async function unlinkIfPresent(file: string): Promise<void> {
  try {
    await fs.promises.unlink(file);
  } catch (error) {
    if (!isErrno(error, 'ENOENT')) throw error;
  }
}

/** Reads into `buf` from `position`, up to its length or the end of the file; returns how much. */
export async function readAt(fd: number, buf: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const read = await new Promise<number>((resolve, reject) => {
      fs.read(fd, buf, done, buf.length - done, position + done, (error, n) =>
        error ? reject(error) : resolve(n),
      );
    });
    if (read === 0) break;
    done += read;
  }
  return done;
}

/** The size of a regular file, 0 when it is gone or is something else. */
export async function sizeOf(file: string): Promise<number> {
  try {
    const stat = await fs.promises.lstat(file);
    return stat.isFile() ? stat.size : 0;
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return 0;
    throw error;
  }
}
