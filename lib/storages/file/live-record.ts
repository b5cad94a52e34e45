/**
 * A record held in memory: one handed to a worker (leased), or one of the few waiting records
 * FileStorage keeps in memory as well as on disk (see `MemoryBudget`). Waiting records are
 * otherwise on disk only, and read back when they are reserved.
 *
 * `text` is always there: `reserve` deserializes it, and a record copied out of a mostly dead
 * segment is written again from it.
 * `value` is the record as pushed, when the default JSON serializer wrote it: its text gives back
 * an equal record, so parsing it again would only cost time.
 */
export interface LiveRecord {
  readonly id: number;
  readonly value: unknown;
  readonly text: string;
  /** Serialized size, which `reserve` measures `maxBytes` by. */
  readonly bytes: number;
  /** Failed attempts so far. */
  attempts: number;
  /** Leases so far (see `StoredRecord.deliveries`), as journaled by LEASE frames. */
  deliveries: number;
  /** When a released record becomes visible again (epoch ms); 0 for one never released. */
  visibleAt: number;
  /** Sequence number of the segment that holds its bytes (its newest copy). */
  segment: number;
  /** Where its serialized bytes start in that segment. */
  offset: number;
  /** Where the frame holding them starts (an APPEND or a CARRY frame). */
  frame: number;
  /** Acknowledged, or set aside: dead. */
  acked: boolean;
}
