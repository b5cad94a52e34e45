/**
 * How long batches may follow one another without the event loop getting a turn, in ms. Batches
 * that complete in microtasks (a worker failing at once while a downstream is down, an in-memory
 * storage) would otherwise starve timers, I/O and pushes for as long as records are left.
 */
const TURN_BUDGET_MS = 5;

/**
 * Keeps back-to-back batches from holding the event loop: once batches have been dispatched for
 * `TURN_BUDGET_MS` since the loop's last turn, the next ones wait for `setImmediate`. Reads
 * `Date.now` and `setImmediate` as they are at the call, so that a test's fake timers control both.
 */
export class TurnBudget {
  /** When the first batch since the event loop's last turn was dispatched; -1 if none was. */
  private startedAt = -1;
  private turnTimer: NodeJS.Immediate | undefined;
  private yieldTimer: NodeJS.Immediate | undefined;
  private readonly endTurn = (): void => {
    this.turnTimer = undefined;
    this.startedAt = -1;
  };
  private readonly resume = (): void => {
    this.yieldTimer = undefined;
    this.startedAt = -1;
    this.onResume();
  };

  /** `onResume` runs after a turn of the event loop, when batches were held back. */
  constructor(private readonly onResume: () => void) {}

  /** Whether the budget is spent: if so, `onResume` will run after the event loop's next turn. */
  isSpent(): boolean {
    if (this.startedAt < 0 || Date.now() - this.startedAt <= TURN_BUDGET_MS) return false;
    this.yieldTimer ??= setImmediate(this.resume);
    return true;
  }

  /** A batch was dispatched. */
  noteDispatch(): void {
    if (this.startedAt >= 0) return;
    this.startedAt = Date.now();
    this.turnTimer = setImmediate(this.endTurn);
  }

  /** At the end of a drain: no batch follows, so no turn is left to watch. */
  forget(): void {
    if (this.turnTimer) clearImmediate(this.turnTimer);
    if (this.yieldTimer) clearImmediate(this.yieldTimer);
    this.turnTimer = this.yieldTimer = undefined;
    this.startedAt = -1;
  }
}
