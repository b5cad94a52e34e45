import type { RedisClient } from './lua-script.js';

/** Runs one Redis call as the storage does (bounded, errors typed). */
type Run = <R>(operation: string, call: (client: RedisClient) => Promise<R>) => Promise<R>;

/** The keys records wait in: the stream, and the retry sets (`retry`, `due`). */
export interface WaitingKeys {
  readonly stream: string;
  readonly retry: string;
  readonly due: string;
}

/** The keys records are leased in: the stream (its group's pending entries), and `lease`. */
export interface LeasedKeys {
  readonly stream: string;
  readonly lease: string;
}

/** Records stored and not leased under `keys`: unread stream entries and retries. */
export async function countWaiting(run: Run, keys: WaitingKeys, group: string): Promise<number> {
  const results = await run('size', (client) =>
    client
      .pipeline()
      .xlen(keys.stream)
      .xpending(keys.stream, group)
      .zcard(keys.retry)
      .zcard(keys.due)
      .exec(),
  );
  // No group yet (an error): nothing is pending.
  const [length, pending, retries, due] = (results ?? []).map(([error, value]) =>
    error ? 0 : value,
  );
  return Number(length) - pendingCount(pending) + Number(retries) + Number(due);
}

/** Records leased under `keys`, by any holder: the group's pending entries and `lease`. */
export async function countLeased(run: Run, keys: LeasedKeys, group: string): Promise<number> {
  const results = await run('leasedElsewhere', (client) =>
    client.pipeline().xpending(keys.stream, group).zcard(keys.lease).exec(),
  );
  const [pending, leases] = (results ?? []).map(([error, value]) => (error ? 0 : value));
  return pendingCount(pending) + Number(leases);
}

/** The count in an `XPENDING` summary, or 0 for anything else (no group: an error). */
function pendingCount(summary: unknown): number {
  return Array.isArray(summary) ? Number(summary[0]) || 0 : 0;
}
