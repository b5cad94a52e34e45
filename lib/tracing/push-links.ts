import type { Link, SpanContext } from '@opentelemetry/api';
import type { RecordId } from '../core/storage.js';

/** The links of one worker span, and how many distinct pushing spans did not fit. */
export interface TakenLinks {
  readonly links: Link[];
  readonly dropped: number;
}

/**
 * The span that pushed each waiting record, by record id, until the record's first worker call
 * takes it. Bounded: only the last `capacity` records remembered can still be found; older ones
 * are forgotten (their worker span lacks that link). Every operation is O(1) per record.
 */
export class PushLinks {
  private readonly byId = new Map<RecordId, SpanContext>();
  /**
   * The last `capacity` ids remembered, oldest at `head`, taken or not: evicting the oldest from
   * this ring is O(1), where taking the first key of a Map that has seen many deletions is not.
   */
  private ring: RecordId[] = [];
  private head = 0;

  constructor(private readonly capacity: number) {}

  /** Entries waiting. */
  get size(): number {
    return this.byId.size;
  }

  /** Remembers that `ids` were pushed under `span`. */
  remember(ids: readonly RecordId[], span: SpanContext): void {
    if (this.capacity === 0) return;
    for (const id of ids) {
      if (this.ring.length < this.capacity) {
        this.ring.push(id);
      } else {
        // Full: the oldest slot is reused; its record is forgotten unless already taken.
        this.byId.delete(this.ring[this.head]!);
        this.ring[this.head] = id;
        this.head = (this.head + 1) % this.capacity;
      }
      this.byId.set(id, span);
    }
  }

  /**
   * Removes the entries of `ids` and returns one link per distinct pushing span, in order of
   * first appearance, with how many of the records it pushed (`bufio.records`), at most `max`.
   */
  take(ids: readonly RecordId[], max: number): TakenLinks {
    if (this.byId.size === 0) return { links: [], dropped: 0 };
    const bySpan = new Map<string, { context: SpanContext; records: number }>();
    for (const id of ids) {
      const span = this.byId.get(id);
      if (span === undefined) continue;
      this.byId.delete(id);
      const key = `${span.traceId}/${span.spanId}`;
      const entry = bySpan.get(key);
      if (entry) entry.records++;
      else bySpan.set(key, { context: span, records: 1 });
    }
    const links: Link[] = [];
    for (const { context, records } of bySpan.values()) {
      if (links.length >= max) break;
      links.push({ context, attributes: { 'bufio.records': records } });
    }
    return { links, dropped: bySpan.size - links.length };
  }

  /** Forgets everything. */
  clear(): void {
    this.byId.clear();
    this.ring = [];
    this.head = 0;
  }
}
