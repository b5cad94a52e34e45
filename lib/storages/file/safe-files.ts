import fs from 'node:fs';
import { StorageAccessError, StorageFullError, UnsafeDirectoryError } from '../../core/errors.js';
import { closeFd, isErrno, readAt } from './file-io.js';

/*
 * Every file FileStorage opens in its directory is opened through here: never through a symbolic
 * link (O_NOFOLLOW), never blocking on something that is not a file (O_NONBLOCK: a FIFO planted
 * under a journal name would hang an open), created only if absent (O_EXCL, which never follows a
 * link either), and checked once open: a regular file, owned by this process's user, with one
 * name (a hard link planted under a journal name is a file of someone else's that we would write).
 * Renames and removals act on the name itself, never on what a link points to (`rename` replaces
 * a planted link, not its target; `unlink` removes the link).
 */

const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_NONBLOCK } =
  fs.constants;
const SAFE = (O_NOFOLLOW ?? 0) | (O_NONBLOCK ?? 0);

/** How a file is opened: read, read and write an existing one, create a new one, or append. */
export type OpenMode = 'read' | 'update' | 'create' | 'append';

const FLAGS: Record<OpenMode, number> = {
  read: O_RDONLY | SAFE,
  update: O_RDWR | SAFE,
  create: O_RDWR | O_CREAT | O_EXCL | SAFE,
  append: O_WRONLY | O_APPEND | O_CREAT | SAFE,
};

/** A file under a journal name that FileStorage will not use: a link, a FIFO, another's file. */
export class UntrustedFileError extends Error {
  constructor(
    readonly file: string,
    readonly why: string,
  ) {
    super(`FileStorage will not use ${file}: ${why}`);
  }
}

/** The effective uid, where the platform has one. */
const ownUid = (): number | undefined => process.geteuid?.();

/**
 * Opens `file` safely (see above) and returns its descriptor and size.
 *
 * @throws UntrustedFileError for a link, something other than a regular file, a file of another
 * user, or one with several names (`sharedOk` allows the last, for lock files, which are
 * published by hard link).
 */
export async function openSafely(
  file: string,
  mode: OpenMode,
  sharedOk = false,
): Promise<{ fd: number; size: number }> {
  let fd: number;
  try {
    fd = await new Promise<number>((resolve, reject) => {
      fs.open(file, FLAGS[mode], 0o600, (error, opened) =>
        error ? reject(error) : resolve(opened),
      );
    });
  } catch (error) {
    if (isErrno(error, 'ELOOP') || isErrno(error, 'EMLINK')) {
      throw new UntrustedFileError(file, 'it is a symbolic link');
    }
    throw error;
  }
  try {
    const stat = await new Promise<fs.Stats>((resolve, reject) => {
      fs.fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats)));
    });
    const uid = ownUid();
    let why: string | undefined;
    if (!stat.isFile()) why = 'it is not a regular file';
    else if (uid !== undefined && stat.uid !== uid) why = `it is owned by uid ${stat.uid}`;
    else if (!sharedOk && stat.nlink !== 1) why = `it has ${stat.nlink} names (hard links)`;
    if (why) throw new UntrustedFileError(file, why);
    return { fd, size: stat.size };
  } catch (error) {
    await closeFd(fd).catch(() => undefined);
    throw error;
  }
}

/**
 * Reads a whole file opened with `openSafely`, and closes it: into `into` when it is large
 * enough (a buffer the caller reuses), else into a new buffer.
 */
export async function readSafely(file: string, sharedOk = false, into?: Buffer): Promise<Buffer> {
  const { fd, size } = await openSafely(file, 'read', sharedOk);
  try {
    const data =
      into !== undefined && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
    const done = await readAt(fd, data, 0);
    return done === size ? data : data.subarray(0, done);
  } finally {
    await closeFd(fd);
  }
}

/** Which option lets FileStorage use a directory that others could write into. */
export const UNSAFE_DIRECTORY_OPTION = 'allowUnsafeDirectory';

/**
 * Refuses a directory that others could plant files in: group- or world-writable, or owned by
 * another user (a process running as root may use a directory of any owner: it could take it
 * anyway).
 *
 * @throws UnsafeDirectoryError naming the mode and the owner.
 */
export async function checkDirectory(directory: string): Promise<void> {
  const stat = await fs.promises.stat(directory);
  const mode = stat.mode & 0o7777;
  const uid = ownUid();
  const problems: string[] = [];
  if (mode & 0o022) {
    problems.push(`it is ${mode & 0o002 ? 'world' : 'group'}-writable (mode 0${mode.toString(8)})`);
  }
  if (uid !== undefined && uid !== 0 && stat.uid !== uid) {
    problems.push(`it is owned by uid ${stat.uid}, not by this process's uid ${uid}`);
  }
  if (problems.length === 0) return;
  throw new UnsafeDirectoryError(
    `FileStorage refuses directory "${directory}": ${problems.join(' and ')}, so others could plant journal files in it or replace its files; use a directory of your own with mode 0700, or pass ${UNSAFE_DIRECTORY_OPTION}: true to accept the risk`,
    directory,
    mode,
    stat.uid,
  );
}

/**
 * The typed error for a failed file operation: a full disk or quota (`StorageFullError`), an
 * access the OS refused (`StorageAccessError`), each naming the path and keeping the OS error as
 * `cause`; any other error is returned unchanged.
 */
export function classifyFileError(error: unknown, file: string, doing: string): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StorageFullError(
      `FileStorage could not ${doing} "${file}": the disk is full (${code}); nothing of the call was stored, and the storage accepts records again once space is freed`,
      file,
      { cause: error },
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    const why = code === 'EROFS' ? 'the file system is read-only' : 'permission denied';
    return new StorageAccessError(
      `FileStorage could not ${doing} "${file}": ${why} (${code})`,
      file,
      { cause: error },
    );
  }
  return error;
}

/** Whether a file error is one the storage can outlive: a full disk, a refused access. */
export function isRefusal(error: unknown): boolean {
  return error instanceof StorageFullError || error instanceof StorageAccessError;
}
