/**
 * A record the storage holds, from its append until its acknowledgement, and where its bytes lie
 * in the journal, so that a segment can be emptied by copying its last live records forward.
 *
 * It is held as the value pushed (`value`: appended by this process with the default JSON
 * serializer, whose text gives back an equal record, so parsing it again would only cost time),
 * or as its serialized text (`text`: read back from the journal, or written by a custom
 * serializer), which `reserve` deserializes, so that a text the serializer cannot read back is
 * found there. Exactly one of the two is set.
 */
export interface LiveRecord {
  readonly id: number;
  readonly value: unknown;
  readonly text: string | undefined;
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
