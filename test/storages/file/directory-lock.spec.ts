import { describe, expect, it } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StorageLockedError } from '../../../lib/core/errors.js';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { runFixture, startFixture } from '../../support/child-process.js';
import { lockFiles, tempDir, useSandbox } from './support.js';

interface ChildResult {
  readonly ok: boolean;
  readonly size?: number;
  readonly code?: string;
  readonly message?: string;
}

const sandbox = useSandbox('lock');

async function openHere(): Promise<FileStorage<unknown>> {
  const storage = await FileStorage.open<unknown>({ directory: sandbox.directory });
  sandbox.track(storage);
  return storage;
}

async function probeFromChild(): Promise<ChildResult> {
  const run = await runFixture('file/lock-child', { args: [sandbox.directory] });
  expect(run.stderr).toEqual([]);
  expect(run.lines).toHaveLength(1);
  return JSON.parse(run.lines[0]!) as ChildResult;
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const run = spawnSync(process.execPath, ['-e', '']);
  return run.pid as number;
}

function writeLock(generation: number, holder: object): void {
  fs.writeFileSync(path.join(sandbox.directory, `LOCK.${generation}`), JSON.stringify(holder), {
    mode: 0o600,
  });
}

function readLock(name: string): { pid: number; free?: boolean } {
  return JSON.parse(fs.readFileSync(path.join(sandbox.directory, name), 'utf8')) as {
    pid: number;
    free?: boolean;
  };
}

describe('FileStorage directory lock', () => {
  it('refuses a second instance in the same process, naming the directory and pid', async () => {
    sandbox.directory = await tempDir('lock');
    const first = await openHere();
    await first.append([{ n: 1 }]);
    const second = new FileStorage<unknown>({ directory: sandbox.directory });
    const error = await second.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageLockedError);
    expect(error).toMatchObject({ code: 'BUFIO_STORAGE_LOCKED' });
    const message = (error as Error).message;
    expect(message).toContain(`"${fs.realpathSync(sandbox.directory)}"`);
    expect(message).toContain(`pid ${process.pid}`);
    // The holder is unaffected, and the refused instance opens once the holder closes.
    await first.append([{ n: 2 }]);
    expect(first.size()).toBe(2);
    await first.close();
    sandbox.untrack();
    await second.open();
    sandbox.track(second);
    expect(second.size()).toBe(2);
  });

  it('lets exactly one of two concurrent opens in the same process win', async () => {
    sandbox.directory = await tempDir('lock');
    const a = new FileStorage<unknown>({ directory: sandbox.directory });
    const b = new FileStorage<unknown>({ directory: sandbox.directory });
    const results = await Promise.allSettled([a.open(), b.open()]);
    sandbox.track(a, b);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(loser.reason).toBeInstanceOf(StorageLockedError);
  });

  it('refuses another process while held, naming this pid, and admits it after close', async () => {
    sandbox.directory = await tempDir('lock');
    const holder = await openHere();
    await holder.append([{ n: 1 }]);
    const refused = await probeFromChild();
    expect(refused).toMatchObject({ ok: false, code: 'BUFIO_STORAGE_LOCKED' });
    expect(refused.message).toContain(`locked by process ${process.pid}`);
    expect(refused.message).toContain(fs.realpathSync(sandbox.directory));
    await holder.close();
    sandbox.untrack();
    expect(await probeFromChild()).toEqual({ ok: true, size: 1 });
  });

  it('takes over the lock of a process that is gone', async () => {
    sandbox.directory = await tempDir('lock');
    const dead = deadPid();
    writeLock(7, { pid: dead, host: os.hostname() });
    const storage = await openHere();
    await storage.append([{ n: 1 }]);
    expect(await lockFiles(sandbox.directory)).toEqual(['LOCK.8']);
    expect(readLock('LOCK.8').pid).toBe(process.pid);
    await storage.close();
    sandbox.untrack();
    // Released: a free marker of the next generation, which anyone may take.
    expect(await lockFiles(sandbox.directory)).toEqual(['LOCK.9']);
    expect(readLock('LOCK.9')).toMatchObject({ free: true });
    expect(await probeFromChild()).toEqual({ ok: true, size: 1 });
  });

  it('tells a live holder from a reused pid by its start time (Linux)', async () => {
    if (!fs.existsSync(`/proc/${process.pid}/stat`)) return;
    sandbox.directory = await tempDir('lock');
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      const stat = fs.readFileSync(`/proc/${sleeper.pid}/stat`, 'utf8');
      const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      writeLock(1, { pid: sleeper.pid, host: os.hostname(), start });
      const refused = await new FileStorage<unknown>({ directory: sandbox.directory })
        .open()
        .catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(StorageLockedError);
      expect((refused as Error).message).toContain(`locked by process ${sleeper.pid}`);
      // The same pid with another start time is a different, later process: the lock is stale.
      writeLock(2, { pid: sleeper.pid, host: os.hostname(), start: '1' });
      await openHere();
      expect(await lockFiles(sandbox.directory)).toEqual(['LOCK.3']);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('counts a holder on another host as alive, and says which host', async () => {
    sandbox.directory = await tempDir('lock');
    writeLock(4, { pid: 1234, host: 'elsewhere.example' });
    const error = await new FileStorage<unknown>({ directory: sandbox.directory })
      .open()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageLockedError);
    expect((error as Error).message).toContain(
      'locked by process 1234 on host "elsewhere.example"',
    );
    expect(await lockFiles(sandbox.directory)).toEqual(['LOCK.4']);
  });

  it('of several processes taking over one stale lock at once, exactly one wins', async () => {
    sandbox.directory = await tempDir('lock');
    writeLock(3, { pid: deadPid(), host: os.hostname() });
    const children = Array.from({ length: 4 }, () =>
      startFixture('file/lock-child', { args: [sandbox.directory, 'hold'], stdin: true }),
    );
    const results = await Promise.all(
      children.map(async (child) => JSON.parse(await child.waitForLine(() => true)) as ChildResult),
    );
    // Every child has answered while the winner still holds the lock; now let the winner go.
    for (const child of children) child.process.stdin?.on('error', () => undefined).end();
    const exits = await Promise.all(children.map((child) => child.exited));
    expect(exits.every((exit) => exit.code === 0)).toBe(true);
    expect(children.flatMap((child) => child.stderr)).toEqual([]);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    for (const result of results.filter((r) => !r.ok)) {
      expect(result.code).toBe('BUFIO_STORAGE_LOCKED');
    }
  });
});
