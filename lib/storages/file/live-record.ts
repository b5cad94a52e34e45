/**
 * A record the storage holds, from its append until its acknowledgement: its serialized text,
 * which `reserve` deserializes (so the worker gets what a restart would give it, and a text the
 * serializer cannot read back is found there), and where its bytes lie in the journal, so that a
 * segment can be emptied by copying its last live records forward.
 */
export interface LiveRecord {
  readonly id: number;
  readonly text: string;
  /** Serialized size, which `reserve` measures `maxBytes` by. */
  readonly bytes: number;
  /** Failed attempts so far. */
  attempts: number;
  /** Leases so far (see `StoredRecord.deliveries`), as journaled by LEASE frames. */
  deliveries: number;
  /** When a released record becomes visible again (epoch ms); 0 for one never released. */
  visibleAt: number;
  /** Sequence number of the segment that holds its bytes. */
  segment: number;
  /** Where its serialized bytes start in that segment. */
  offset: number;
  /** Acknowledged, or set aside: dead. */
  acked: boolean;
}
