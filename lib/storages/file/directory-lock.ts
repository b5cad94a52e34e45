import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StorageLockedError } from '../../core/errors.js';
import { isErrno, unlinkIfPresent } from './file-io.js';
import { readSafely, UntrustedFileError } from './safe-files.js';

/** What a lock file says about its holder. */
interface Holder {
  readonly pid: number;
  readonly host: string;
  /** The holder's start time (Linux `/proc/<pid>/stat`), to tell a reused pid from the holder. */
  readonly start?: string;
  /** Written by `release`: nobody holds the directory. */
  readonly free?: boolean;
}

const LOCK_PATTERN = /^LOCK\.(\d+)$/;
const MAX_ROUNDS = 50;

/** Directories locked by this process, by real path. */
const heldHere = new Set<string>();

/**
 * Exclusive use of a directory, across processes and within this one.
 *
 * The lock is a file `LOCK.<generation>` holding the holder's pid. Each new holder takes the
 * next generation, created atomically (a hard link of a complete file, which fails if the name
 * exists), so of two processes taking over the same stale lock at once exactly one wins. Release
 * writes a "free" marker as the next generation instead of deleting the file, so generations never
 * repeat, and a process that read an old generation cannot win with it later.
 *
 * A lock whose holder has died (no such pid, or the pid now belongs to a process started later)
 * is stale and taken over. A lock naming this process but not held by any instance in it was left
 * by an instance that was abandoned without `close()` (or by an earlier process whose pid we got
 * again, common in containers), and is stale too.
 */
export class DirectoryLock {
  private released = false;

  private constructor(
    readonly directory: string,
    private readonly generation: number,
  ) {}

  /**
   * @param directory the directory's real path.
   * @throws StorageLockedError naming the directory and the holder's pid.
   */
  static async acquire(directory: string): Promise<DirectoryLock> {
    if (heldHere.has(directory)) {
      throw new StorageLockedError(
        `FileStorage directory "${directory}" is already open in this process (pid ${process.pid}): close the other FileStorage first`,
      );
    }
    heldHere.add(directory);
    try {
      return new DirectoryLock(directory, await take(directory));
    } catch (error) {
      heldHere.delete(directory);
      throw error;
    }
  }

  /** The lock file this holder owns. */
  get file(): string {
    return path.join(this.directory, lockName(this.generation));
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    try {
      const marker: Holder = { pid: process.pid, host: os.hostname(), free: true };
      await publish(this.directory, this.generation + 1, marker);
      await unlinkIfPresent(this.file);
    } finally {
      heldHere.delete(this.directory);
    }
  }

  /** Lets go as a crashed process would: the lock file stays, naming this process. */
  abandon(): void {
    this.released = true;
    heldHere.delete(this.directory);
  }
}

function lockName(generation: number): string {
  return `LOCK.${generation}`;
}

async function take(directory: string): Promise<number> {
  const self = await ownHolder();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const current = await readCurrent(directory);
    if (current === 'changed') continue;
    const { generation, holder } = current;
    if (holder && !holder.free && (await alive(holder))) {
      const where = holder.host === self.host ? '' : ` on host "${holder.host}"`;
      throw new StorageLockedError(
        `FileStorage directory "${directory}" is locked by process ${holder.pid}${where} (${lockName(generation)}): another FileStorage is using it; close it or stop that process`,
      );
    }
    const mine = generation + 1;
    if (!(await publish(directory, mine, self))) continue;
    // Someone may have moved past us in between; the highest generation owns the directory.
    const after = await readCurrent(directory);
    if (after === 'changed' || after.generation !== mine) {
      await unlinkIfPresent(path.join(directory, lockName(mine)));
      continue;
    }
    for (const name of await fs.readdir(directory)) {
      const match = LOCK_PATTERN.exec(name);
      if (match && Number(match[1]) < mine) await unlinkIfPresent(path.join(directory, name));
    }
    return mine;
  }
  throw new StorageLockedError(
    `FileStorage directory "${directory}" could not be locked: its lock kept changing hands (${MAX_ROUNDS} attempts)`,
  );
}

/** The highest generation and its holder (undefined if unreadable), or 'changed' if it vanished. */
async function readCurrent(
  directory: string,
): Promise<{ generation: number; holder: Holder | undefined } | 'changed'> {
  let generation = 0;
  for (const name of await fs.readdir(directory)) {
    const match = LOCK_PATTERN.exec(name);
    if (match) generation = Math.max(generation, Number(match[1]));
  }
  if (generation === 0) return { generation, holder: undefined };
  let text: string;
  try {
    // Never through a link nor from a FIFO; published by hard link, so it may have two names.
    text = (await readSafely(path.join(directory, lockName(generation)), true)).toString('utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return 'changed';
    // A planted lock name: a holder we cannot read, so the lock is taken over past it.
    if (error instanceof UntrustedFileError) return { generation, holder: undefined };
    throw error;
  }
  return { generation, holder: parseHolder(text) };
}

function parseHolder(text: string): Holder | undefined {
  try {
    const value = JSON.parse(text) as Partial<Holder> | null;
    if (value === null || typeof value !== 'object') return undefined;
    if (typeof value.pid !== 'number' || typeof value.host !== 'string') return undefined;
    return value as Holder;
  } catch {
    return undefined;
  }
}

/**
 * Creates `LOCK.<generation>` with its content complete, or returns false if that generation
 * exists already.
 */
async function publish(directory: string, generation: number, holder: Holder): Promise<boolean> {
  const target = path.join(directory, lockName(generation));
  const temp = path.join(directory, `.LOCK.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  await fs.writeFile(temp, JSON.stringify(holder), { mode: 0o600, flag: 'wx' });
  try {
    await fs.link(temp, target);
    return true;
  } catch (error) {
    if (isErrno(error, 'EEXIST')) return false;
    // A file system without hard links: an exclusive create is still atomic, only not its content.
    try {
      await fs.writeFile(target, JSON.stringify(holder), { mode: 0o600, flag: 'wx' });
      return true;
    } catch (fallbackError) {
      if (isErrno(fallbackError, 'EEXIST')) return false;
      throw fallbackError;
    }
  } finally {
    await unlinkIfPresent(temp);
  }
}

async function ownHolder(): Promise<Holder> {
  const start = await processStart(process.pid);
  return start === undefined
    ? { pid: process.pid, host: os.hostname() }
    : { pid: process.pid, host: os.hostname(), start };
}

/** Whether the process a lock names still runs. */
async function alive(holder: Holder): Promise<boolean> {
  // A process on another host cannot be checked: count it alive, the safe answer.
  if (holder.host !== os.hostname()) return true;
  // An instance in this process that holds the lock is in `heldHere`, refused before we got here.
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if (isErrno(error, 'ESRCH')) return false;
    // EPERM: it exists, under another user.
  }
  if (holder.start !== undefined) {
    const start = await processStart(holder.pid);
    if (start !== undefined && start !== holder.start) return false;
  }
  return true;
}

/** A process's start time in clock ticks since boot, where `/proc` tells it (Linux). */
async function processStart(pid: number): Promise<string | undefined> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}
