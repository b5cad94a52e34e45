import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/*
 * A default consumer name says which process holds a lease: `<host>-<pid>-<namespace>-<random>`.
 * `<namespace>` names the kernel's boot and the process's pid namespace, so that a pid is only
 * ever compared with processes it can see: another container on the same host, or the same host
 * after a reboot, has another one.
 */

const NAME = /^(.*)-(\d+)-([0-9a-f]{8})-([0-9a-f]{8})$/;

let here: { host: string; namespace: string } | undefined;
/** Consumer names of storages open in this process: alive, whatever their pid says. */
const open = new Set<string>();

function currentHost(): { host: string; namespace: string } {
  if (here) return here;
  const host =
    hostname()
      .replace(/[^\w.-]/g, '_')
      .slice(0, 64) || 'host';
  let identity = host;
  for (const read of [
    () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    () => readlinkSync('/proc/self/ns/pid'),
  ]) {
    try {
      identity += `|${read()}`;
    } catch {
      // Not Linux: the host name alone, and no proof across containers is attempted.
    }
  }
  here = { host, namespace: createHash('sha256').update(identity).digest('hex').slice(0, 8) };
  return here;
}

/** This process's default consumer name: unique, and telling where it runs. */
export function defaultConsumerName(): string {
  const { host, namespace } = currentHost();
  return `${host}-${process.pid}-${namespace}-${randomBytes(4).toString('hex')}`;
}

/** Marks a consumer name as used by a storage open in this process (`alive` false: closed). */
export function markOpen(name: string, alive: boolean): void {
  if (alive) open.add(name);
  else open.delete(name);
}

/**
 * Whether `name` is the default consumer name of a process that is provably gone: it ran on this
 * host, in this pid namespace, since the last boot, and its pid is not running (or is ours, and no
 * storage of this process has the name: the process it names was an earlier one). Any doubt answers
 * false: its leases then lapse after `leaseTimeout`, as those of a process on another host do.
 */
export function isProvenGone(name: string): boolean {
  if (open.has(name)) return false;
  const match = NAME.exec(name);
  if (!match) return false;
  const { host, namespace } = currentHost();
  if (match[1] !== host || match[3] !== namespace) return false;
  const pid = Number(match[2]);
  if (pid === process.pid) return true;
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
