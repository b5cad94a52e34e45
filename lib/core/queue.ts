const CHUNK_BITS = 11;
const CHUNK_SIZE = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK_SIZE - 1;

/**
 * FIFO queue with O(1) push, shift and access by position, in fixed-size chunks: memory follows
 * the length (a chunk is freed as soon as it is read through) and nothing is ever copied, unlike
 * `Array#shift`, which is O(n) on large arrays.
 */
export class Queue<T> {
  private chunks: (T | undefined)[][] = [new Array<T | undefined>(CHUNK_SIZE)];
  /** Position of the head within the first chunk. */
  private head = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(item: T): void {
    const slot = this.head + this.count;
    const chunk = slot >> CHUNK_BITS;
    if (chunk === this.chunks.length) this.chunks.push(new Array<T | undefined>(CHUNK_SIZE));
    (this.chunks[chunk] as (T | undefined)[])[slot & CHUNK_MASK] = item;
    this.count++;
  }

  /** The oldest item, without removing it. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : (this.chunks[0] as (T | undefined)[])[this.head];
  }

  /** The item at `index` (0 is the oldest), or undefined when out of range. */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.count) return undefined;
    const slot = this.head + index;
    return (this.chunks[slot >> CHUNK_BITS] as (T | undefined)[])[slot & CHUNK_MASK];
  }

  /** Replaces the item at `index` (0 is the oldest); returns false when out of range. */
  set(index: number, item: T): boolean {
    if (index < 0 || index >= this.count) return false;
    const slot = this.head + index;
    (this.chunks[slot >> CHUNK_BITS] as (T | undefined)[])[slot & CHUNK_MASK] = item;
    return true;
  }

  /** Inserts `item` at `index` (0 is the oldest), moving later items back: O(length − index). */
  insert(index: number, item: T): void {
    if (index >= this.count) {
      this.push(item);
      return;
    }
    this.push(this.at(this.count - 1) as T);
    for (let i = this.count - 2; i > index; i--) this.set(i, this.at(i - 1) as T);
    this.set(Math.max(0, index), item);
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const first = this.chunks[0] as (T | undefined)[];
    const item = first[this.head];
    first[this.head] = undefined;
    this.head++;
    this.count--;
    if (this.count === 0) {
      // Empty: start over in the first chunk, dropping any other.
      this.head = 0;
      if (this.chunks.length > 1) this.chunks.length = 1;
    } else if (this.head === CHUNK_SIZE) {
      // The array of chunks is short (length / 2048), so shifting it is cheap.
      this.chunks.shift();
      this.head = 0;
    }
    return item;
  }
}
