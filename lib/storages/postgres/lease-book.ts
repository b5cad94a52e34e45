/** One reserved batch: a row of `T_leases`, and which of its records the engine still holds. */
export interface Lease {
  readonly seq: number;
  /** Records neither acknowledged, released nor set aside yet. */
  readonly open: Set<string>;
}

/** Records of one settling call that belong to one lease. */
export interface Settlement {
  readonly lease: Lease;
  readonly ids: string[];
  /** Nothing of the lease is open after these: its row goes. */
  readonly last: boolean;
}

/** `seq` is a PostgreSQL integer, counted per holder; it wraps long after a lease has ended. */
const MAX_SEQ = 2_147_483_647;

/**
 * The leases this instance holds, by batch and by record, so that an ack or a release names the
 * lease row to settle. Only what is in flight is kept: O(records leased), not O(backlog).
 */
export class LeaseBook {
  private nextSeq: number;
  private readonly byId = new Map<string, Lease>();
  private readonly bySeq = new Map<number, Lease>();

  constructor(firstSeq = 0) {
    this.nextSeq = firstSeq % MAX_SEQ;
  }

  /** How many leases are open. */
  get size(): number {
    return this.bySeq.size;
  }

  /** The seq the next reserve will lease under. */
  take(): number {
    const seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) % MAX_SEQ;
    return seq;
  }

  /** Records that `ids` were leased under `seq`. */
  open(seq: number, ids: readonly string[]): Lease {
    const lease: Lease = { seq, open: new Set(ids) };
    this.bySeq.set(seq, lease);
    for (const id of ids) this.byId.set(id, lease);
    return lease;
  }

  /**
   * Takes `ids` out of their leases, grouped by lease; ids this instance does not hold (settled
   * already, or never leased here) come back in `unknown`. A lease left with nothing open is
   * forgotten.
   */
  settle(ids: Iterable<string>): { settlements: Settlement[]; unknown: string[] } {
    const groups = new Map<Lease, string[]>();
    const unknown: string[] = [];
    for (const id of ids) {
      const lease = this.byId.get(id);
      if (!lease) {
        unknown.push(id);
        continue;
      }
      this.byId.delete(id);
      lease.open.delete(id);
      let group = groups.get(lease);
      if (!group) groups.set(lease, (group = []));
      group.push(id);
    }
    const settlements: Settlement[] = [];
    for (const [lease, group] of groups) {
      const last = lease.open.size === 0;
      if (last) this.bySeq.delete(lease.seq);
      settlements.push({ lease, ids: group, last });
    }
    return { settlements, unknown };
  }

  /** Forgets every lease (the storage is closing); returns how many were open. */
  clear(): number {
    const count = this.bySeq.size;
    this.bySeq.clear();
    this.byId.clear();
    return count;
  }
}
