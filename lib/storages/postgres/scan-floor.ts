/** How long a taken key waits before it bounds the scan: longer than a write takes to commit. */
const SETTLE_MS = 1000;

/** A position in an index ordered by `(visible_at, id)`: `visibleAt` is 0 for fresh records. */
export interface ScanKey {
  readonly visibleAt: bigint;
  readonly id: bigint;
}

const HEAD: ScanKey = { visibleAt: 0n, id: 0n };

function after(a: ScanKey, b: ScanKey): boolean {
  return a.visibleAt > b.visibleAt || (a.visibleAt === b.visibleAt && a.id > b.id);
}

/**
 * A lower bound for a reserve's scan of an index (fresh records by `id`, retries by
 * `(visible_at, id)`), so that it starts where the records are instead of at the head, where
 * every record taken since the last vacuum has left a dead index entry: without it, each reserve
 * would walk them all, and a drain of a million records would slow down as it goes.
 *
 * The bound is only a hint, kept per instance: the last key this instance took, once `SETTLE_MS`
 * have passed. A row can still appear below it: from a write that had taken its key but not
 * committed when the key was taken (another instance's INSERT, whose ids and commits came in
 * different orders; a release computed before it), from a reserve that failed after locking
 * rows, or from a release with a `visibleAt` in the past. Waiting `SETTLE_MS` covers the first as
 * long as writes commit within it; for the rest, the bound goes back to the head when the storage
 * recovers leases (every `recoveryInterval`) and after a failed reserve, so such a record waits
 * at most that long: late, never lost.
 */
export class ScanFloor {
  private floor: ScanKey = HEAD;
  private readonly pending: { readonly key: ScanKey; readonly at: number }[] = [];

  /** The bound to scan from at `now`. */
  current(now: number): ScanKey {
    while (this.pending.length > 0 && (this.pending[0] as { at: number }).at <= now - SETTLE_MS) {
      const { key } = this.pending.shift() as { key: ScanKey };
      if (after(key, this.floor)) this.floor = key;
    }
    return this.floor;
  }

  /** A reserve took the row at `key` at `now` (of the keys given at one time, the highest counts). */
  took(key: ScanKey, now: number): void {
    const last = this.pending[this.pending.length - 1];
    // One entry per few ms is enough: the list stays short at any rate of reserves.
    if (last && now - last.at < 10) {
      if (after(key, last.key)) this.pending[this.pending.length - 1] = { key, at: last.at };
      return;
    }
    this.pending.push({ key, at: now });
  }

  /** Scans start from the head again: some row may have been passed. */
  reset(): void {
    this.floor = HEAD;
    this.pending.length = 0;
  }
}
