import { randomInt } from 'node:crypto';
import { LeaseRenewal } from '../lease-renewal.js';
import { LeaseBook, type Settlement } from './lease-book.js';

const MAX_INT = 2_147_483_647;

/** What `HeldLeases` needs from its storage. */
export interface HeldLeasesOptions {
  readonly leaseTimeout: number;
  /** Extends the leases `seqs` of this holder (their `_leases` rows) until `until`. */
  renew(seqs: number[], until: number): Promise<void>;
  report(error: Error): void;
}

/**
 * The batches this instance holds leased, one `_leases` row each: which records each still holds
 * open (`LeaseBook`), renewed while held (`LeaseRenewal`).
 */
export class HeldLeases {
  private readonly book = new LeaseBook(randomInt(MAX_INT));
  private readonly renewal: LeaseRenewal;

  constructor(options: HeldLeasesOptions) {
    this.renewal = new LeaseRenewal({
      leaseTimeout: options.leaseTimeout,
      renew: (seqs) => options.renew(seqs.map(Number), Date.now() + options.leaseTimeout),
      report: (error) => options.report(error as Error),
    });
  }

  /** The seq the next reserve leases under. */
  take(): number {
    return this.book.take();
  }

  /** The batch `ids` was leased under `seq`: hold it, and renew it until it is settled. */
  hold(seq: number, ids: readonly string[]): void {
    this.book.open(seq, ids);
    this.renewal.hold([String(seq)]);
  }

  /**
   * Takes the records `ids` out of their leases and runs `apply` once per lease (records this
   * instance does not hold come as one group with seq -1). A lease is no longer renewed once
   * nothing of it is open, or once a statement on it failed: then it lapses, and recovery returns
   * whatever the failed statement left open.
   */
  async settle(
    ids: readonly string[],
    apply: (settlement: Settlement) => Promise<void>,
  ): Promise<void> {
    const { settlements, unknown } = this.book.settle(ids);
    if (unknown.length > 0) {
      settlements.push({ lease: { seq: -1, open: new Set() }, ids: unknown, last: false });
    }
    const outcomes = await Promise.allSettled(
      settlements.map(async (settlement) => {
        let failed = true;
        try {
          await apply(settlement);
          failed = false;
        } finally {
          if ((failed || settlement.last) && settlement.lease.seq >= 0) {
            this.renewal.forget([String(settlement.lease.seq)]);
          }
        }
      }),
    );
    for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
  }

  /** Stops renewing and forgets every lease (the storage is closing); returns how many were held. */
  stop(): number {
    this.renewal.stop();
    return this.book.clear();
  }
}
