import { isProvenGone } from './consumer-name.js';
import type { BufferContext } from './batch-reads.js';
import { RECOVER } from './scripts.js';

/** Most records one RECOVER call makes visible again; `recover()` calls it until done. */
const RECOVER_CAP = 1000;

/** What `recoverLapsed` needs from its storage. */
export type LeaseRecoveryContext = Pick<
  BufferContext,
  'group' | 'consumer' | 'leaseTimeout' | 'hints' | 'script'
>;

/**
 * RECOVER until nothing is left to take: lapsed leases, and everything held by the consumers
 * named in `dead` and by those of its reply proven gone (a process of this host that no longer
 * runs). Returns how many records were made visible again.
 */
export async function recoverLapsed(
  dead: readonly string[],
  context: LeaseRecoveryContext,
): Promise<number> {
  const { group, consumer, leaseTimeout, hints } = context;
  let recovered = 0;
  let gone = dead;
  for (let round = 0; round < 1000; round++) {
    const mark = hints.mark();
    const reply = (await context.script('recover', RECOVER, [
      group,
      consumer,
      leaseTimeout,
      RECOVER_CAP,
      ...gone,
    ])) as [number, number, string, ...string[]];
    const [count, due, nextRetry, ...holders] = reply;
    recovered += Number(count);
    hints.observe(mark, Number(due), String(nextRetry));
    gone = holders.map(String).filter((name) => name !== consumer && isProvenGone(name));
    if (gone.length === 0 && Number(count) < RECOVER_CAP) break;
  }
  return recovered;
}
