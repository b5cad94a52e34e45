/**
 * A record the storage holds, from its append until its acknowledgement: the record itself for
 * `reserve`, and where its serialized bytes lie in the journal, so that a segment can be emptied
 * by copying its last live records forward.
 */
export interface LiveRecord<T> {
  readonly id: number;
  readonly record: T;
  /** Serialized size, which `reserve` measures `maxBytes` by. */
  readonly bytes: number;
  /** Failed attempts so far. */
  attempts: number;
  /** When a released record becomes visible again (epoch ms); 0 for one never released. */
  visibleAt: number;
  /** Sequence number of the segment that holds its bytes. */
  segment: number;
  /** Where its serialized bytes start in that segment. */
  offset: number;
  acked: boolean;
}
