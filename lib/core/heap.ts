/**
 * A binary min-heap: O(log n) push and pop, the least item (by `before`) on top. The retry
 * bookkeeping of the engine and of the storages keeps its backlogs in heaps, so that no reserve,
 * release or timer walks or re-sorts a backlog that an outage may have grown to millions.
 */
export class Heap<V> {
  private readonly items: V[] = [];

  /** `before(a, b)`: whether `a` comes out before `b`. */
  constructor(private readonly before: (a: V, b: V) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): V | undefined {
    return this.items[0];
  }

  push(item: V): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(item, items[parent]!)) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = item;
  }

  pop(): V | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      this.siftDown();
    }
    return top;
  }

  /** Restores the order after the top item's key grew (cheaper than a pop and a push). */
  topChanged(): void {
    if (this.items.length > 1) this.siftDown();
  }

  /** Every item, in no particular order. */
  values(): readonly V[] {
    return this.items;
  }

  clear(): void {
    this.items.length = 0;
  }

  private siftDown(): void {
    const items = this.items;
    const n = items.length;
    const item = items[0]!;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.before(items[right]!, items[left]!) ? right : left;
      if (!this.before(items[child]!, item)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = item;
  }
}
