import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { removeDir, tempDir } from './support.js';

/*
 * Small tmpfs mounts for the tests of a full disk and a read-only file system. Mounting needs
 * root (or a user namespace): where it is not permitted, those tests are skipped with a loud
 * notice, and fail under `CI=true`, where the machine is expected to allow it.
 */

/** Whether this process may mount a tmpfs; says so loudly when not, and throws under CI. */
export async function canMount(): Promise<boolean> {
  const probe = await tempDir('mount-probe');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return true;
  } catch (error) {
    const message = `cannot mount a tmpfs here (${(error as Error).message.split('\n')[0]})`;
    if (process.env.CI === 'true') {
      throw new Error(`${message}; CI=true, so the tests that need one fail`);
    }
    process.stderr.write(
      `\n${'!'.repeat(78)}\n!! SKIPPING the full-disk and read-only tests: ${message}.\n!! Run them as root.\n${'!'.repeat(78)}\n\n`,
    );
    return false;
  } finally {
    await removeDir(probe);
  }
}

/** A tmpfs of `kib` KiB mounted on a new directory; unmount it with `unmount`. */
export async function mountTmpfs(label: string, kib: number): Promise<string> {
  const directory = await tempDir(label);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k,mode=0700`, 'tmpfs', directory]);
  return directory;
}

/** Remounts a tmpfs read-only, or read-write again. */
export function remount(directory: string, readOnly: boolean): void {
  execFileSync('mount', ['-o', `remount,${readOnly ? 'ro' : 'rw'}`, directory]);
}

/** Unmounts; lazily when something (a failed test's storage) still holds a file open. */
export async function unmount(directory: string): Promise<void> {
  try {
    execFileSync('umount', [directory], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', directory]);
  }
  await fs.rmdir(directory);
}
