import { StorageFullError } from '../core/errors.js';
import type { RecordId } from '../core/storage.js';

/**
 * Tracks a batch's serialized size against a reserve's `maxBytes`; the first record always fits,
 * so that an oversized record cannot block the buffer. Shared by the in-process storages.
 */
export class ByteBudget<R> {
  private used = 0;

  constructor(
    private readonly maxBytes: number | undefined,
    private readonly sizeOf: (record: R) => number,
  ) {}

  /** Whether `record` fits after `batchLength` records; if it does, it is counted. */
  fits(record: R, batchLength: number): boolean {
    if (this.maxBytes === undefined) return true;
    const size = this.sizeOf(record);
    if (batchLength > 0 && this.used + size > this.maxBytes) return false;
    this.used += size;
    return true;
  }
}

/**
 * The bytes an in-process storage holds against its `maxBytes` (records waiting, leased or waiting
 * for a retry, until acknowledged): an append that would go over is refused whole with
 * `StorageFullError`, and `Storage.watchRoom` listeners hear when acknowledgements free room after
 * a refusal. Sizes are remembered per id, so a record changed by its worker frees what it took.
 */
export class HeldBytes<R> {
  private used = 0;
  private readonly sizes = new Map<RecordId, number>();
  private readonly listeners = new Set<() => void>();
  /** An append was refused since the listeners were last told of room. */
  private refused = false;

  constructor(
    readonly maxBytes: number,
    private readonly sizeOf: (record: R) => number,
    private readonly storageName: string,
  ) {}

  /**
   * The sizes of `records`, which fit together.
   *
   * @throws StorageFullError when they do not fit; nothing is counted.
   */
  measure(records: readonly R[]): number[] {
    const sizes = records.map(this.sizeOf);
    let total = 0;
    for (const size of sizes) total += size;
    this.check(total);
    return sizes;
  }

  /** `measure` for one record. */
  measureOne(record: R): number {
    const size = this.sizeOf(record);
    this.check(size);
    return size;
  }

  /** Counts a measured record, stored under `id`. */
  hold(id: RecordId, size: number): void {
    this.sizes.set(id, size);
    this.used += size;
  }

  /** Whether the record `id` may be replaced by `record`; if it may, its new size is counted. */
  resize(id: RecordId, record: R): boolean {
    const before = this.sizes.get(id) ?? 0;
    const after = this.sizeOf(record);
    if (after > before && this.used - before + after > this.maxBytes) return false;
    this.hold(id, after);
    this.used -= before;
    return true;
  }

  /** Acknowledged records give their room back; after a refusal, the listeners are told. */
  free(ids: readonly RecordId[]): void {
    let freed = 0;
    for (const id of ids) {
      const size = this.sizes.get(id);
      if (size === undefined) continue;
      this.sizes.delete(id);
      freed += size;
    }
    this.used -= freed;
    if (freed === 0 || !this.refused) return;
    this.refused = false;
    for (const listener of [...this.listeners]) listener();
  }

  /** See `Storage.watchRoom`. */
  watch(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private check(bytes: number): void {
    if (this.used + bytes <= this.maxBytes) return;
    this.refused = true;
    throw new StorageFullError(
      `${this.storageName} is full: maxBytes is ${this.maxBytes}, ${this.used} are in use, and an append of ${bytes} bytes does not fit; nothing of it was stored, and appends are accepted again once acknowledgements free room`,
      'memory',
    );
  }
}
