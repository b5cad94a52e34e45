/**
 * What one storage instance knows about records waiting in `retry` and `due`, so that a reserve
 * runs the TAKE script only when some may be ready, and is a plain `XREADGROUP` otherwise.
 *
 * Replies of TAKE and RECOVER carry a snapshot (records in `due`, the earliest retry time). A
 * snapshot replaces what is known only if nothing was released or recovered since it was asked
 * for; otherwise it can only add to it, so that a release is never forgotten because an older
 * reply arrived after it. Retries released by other instances are learned from RECOVER, which
 * runs on the engine's recovery timer.
 */
export class RetryHints {
  /** Records may wait in `due`: unknown at first, so the first reserve looks. */
  private due = true;
  /** The earliest visibleAt in `retry` (engine clock); -Infinity: unknown. */
  private nextRetry = -Infinity;
  private version = 0;

  constructor(private readonly onNextRetry: (at: number) => void) {}

  /** Whether a reserve at `now` should look at `retry` and `due`. */
  mayHaveDue(now: number): boolean {
    return this.due || this.nextRetry <= now;
  }

  /** Taken before a request whose reply carries a snapshot; pass it back to `observe`. */
  mark(): number {
    return this.version;
  }

  observe(mark: number, due: number, nextRetry: string): void {
    const at = parseScore(nextRetry);
    if (mark === this.version) {
      this.due = due > 0;
      this.nextRetry = at;
    } else {
      this.due ||= due > 0;
      this.nextRetry = Math.min(this.nextRetry, at);
    }
    this.onNextRetry(this.nextRetry);
  }

  /** This instance released records, visible from `visibleAt`. */
  released(visibleAt: number): void {
    this.version++;
    this.nextRetry = Math.min(this.nextRetry, visibleAt);
    this.onNextRetry(this.nextRetry);
  }

  /** Records were made ready in `due` (recovered, or moved from 0.2.0's keys). */
  madeDue(): void {
    this.version++;
    this.due = true;
  }
}

/** A sorted-set score as Redis writes it ('inf', '-inf', digits), '' for none (Infinity). */
function parseScore(score: string): number {
  if (score === '' || score === 'inf' || score === '+inf') return Infinity;
  if (score === '-inf') return -Infinity;
  const value = Number(score);
  return Number.isNaN(value) ? -Infinity : value;
}
