const CHUNK_SIZE = 2048;

interface Chunk<T> {
  readonly items: (T | undefined)[];
  next: Chunk<T> | undefined;
}

/**
 * FIFO queue with O(1) push and shift, in fixed-size chunks: memory follows the length (a chunk is
 * freed as soon as it is read through) and nothing is ever copied, unlike `Array#shift`, which is
 * O(n) on large arrays.
 */
export class Queue<T> {
  private head: Chunk<T>;
  private tail: Chunk<T>;
  private headIndex = 0;
  private tailIndex = 0;
  private count = 0;

  constructor() {
    this.head = this.tail = { items: new Array<T | undefined>(CHUNK_SIZE), next: undefined };
  }

  get length(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.tailIndex === CHUNK_SIZE) {
      const chunk: Chunk<T> = { items: new Array<T | undefined>(CHUNK_SIZE), next: undefined };
      this.tail.next = chunk;
      this.tail = chunk;
      this.tailIndex = 0;
    }
    this.tail.items[this.tailIndex++] = item;
    this.count++;
  }

  /** The oldest item, without removing it. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.head.items[this.headIndex];
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const items = this.head.items;
    const item = items[this.headIndex];
    items[this.headIndex++] = undefined;
    this.count--;
    if (this.count === 0) {
      // Reuse the chunk instead of allocating: an empty queue resets to its start.
      this.headIndex = this.tailIndex = 0;
      this.head = this.tail;
    } else if (this.headIndex === CHUNK_SIZE) {
      this.head = this.head.next as Chunk<T>;
      this.headIndex = 0;
    }
    return item;
  }
}
