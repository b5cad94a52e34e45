/**
 * How long batches may follow one another without the event loop getting a turn, in ms. Batches
 * that complete in microtasks (a worker failing at once while a downstream is down, an in-memory
 * storage) would otherwise starve timers, I/O and pushes for as long as records are left.
 */
const TURN_BUDGET_MS = 5;

/**
 * Keeps back-to-back batches from holding the event loop: once batches have been dispatched for
 * `TURN_BUDGET_MS` since the loop's last turn, the next ones wait for `setImmediate`. Unless
 * records were pushed meanwhile: then producers running in microtasks (`await push()` in a loop)
 * hold the loop as much as the batches do, and holding the batches back would not give the loop
 * its turn, only fill the buffer until the producers block; the budget starts again instead.
 * Reads `Date.now` and `setImmediate` as they are at the call, so that a test's fake timers
 * control both.
 */
export class TurnBudget {
  /** When the first batch since the event loop's last turn was dispatched; -1 if none was. */
  private startedAt = -1;
  /** Records appended so far when the budget started (`Backlog.appended`). */
  private appendedAtStart = 0;
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

  /**
   * Whether the budget is spent: if so, `onResume` will run after the event loop's next turn.
   * `appended`: records appended so far (`Backlog.appended`).
   */
  isSpent(appended: number): boolean {
    // Held back already: asked again on every push until the loop turns, without reading the clock.
    if (this.yieldTimer) return true;
    if (this.startedAt < 0) return false;
    const now = Date.now();
    if (now - this.startedAt <= TURN_BUDGET_MS) return false;
    if (appended !== this.appendedAtStart) {
      this.startedAt = now;
      this.appendedAtStart = appended;
      return false;
    }
    this.yieldTimer ??= setImmediate(this.resume);
    return true;
  }

  /** A batch was dispatched; `appended`: records appended so far. */
  noteDispatch(appended: number): void {
    if (this.startedAt >= 0) return;
    this.startedAt = Date.now();
    this.appendedAtStart = appended;
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
