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
