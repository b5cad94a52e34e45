import { randomInt } from 'node:crypto';
import { LeaseRenewal } from '../lease-renewal.js';
import { LeaseBook, type Settlement } from './lease-book.js';
import type { PostgresPool } from './postgres-pool.js';
import { toMs } from './reserved-rows.js';
import type { Statements } from './statements.js';

const MAX_INT = 2_147_483_647;

/** What `HeldLeases` needs from its storage. */
export interface HeldLeasesOptions {
  readonly leaseTimeout: number;
  readonly pool: PostgresPool;
  readonly sql: Statements;
  /** This instance's `_leases.holder_key`. */
  readonly holderKey: string;
  /** The counter row the next statement adjusts. */
  nextStripe(): number;
  report(error: Error): void;
}

/**
 * The batches this instance holds leased, one `_leases` row each: which records each still holds
 * open (`LeaseBook`), renewed while held (`LeaseRenewal`), and the statements that settle them
 * (ack, release) or give them back (close).
 */
export class HeldLeases {
  private readonly book = new LeaseBook(randomInt(MAX_INT));
  private readonly renewal: LeaseRenewal;

  constructor(private readonly options: HeldLeasesOptions) {
    const { pool, sql, holderKey, leaseTimeout } = options;
    this.renewal = new LeaseRenewal({
      leaseTimeout,
      renew: async (seqs) => {
        const until = Date.now() + leaseTimeout;
        await pool.query('lease renewal', sql.renew, [holderKey, seqs.map(Number), until]);
      },
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

  /** Removes records for good: a whole batch done deletes its row, part of one narrows it. */
  async ack(ids: readonly string[]): Promise<void> {
    const { pool, sql, holderKey } = this.options;
    await this.settle(ids, async ({ lease, ids: settled, last }) => {
      // The usual case, a whole batch done: one row deleted, no ids sent.
      if (last) {
        const ended = await pool.query('ack', sql.ackAll, [holderKey, lease.seq, settled.length]);
        if (ended.rowCount === 1) return;
      }
      await pool.query('ack', sql.ack, [holderKey, lease.seq, settled, this.options.nextStripe()]);
    });
  }

  /** Moves leased records, with one more attempt, to `_retry`, hidden until `visibleAt`. */
  async release(ids: readonly string[], visibleAt: number): Promise<void> {
    const { pool, sql, holderKey } = this.options;
    await this.settle(ids, async ({ lease, ids: settled }) => {
      if (lease.seq < 0) return; // not leased here: nothing to put back
      const stripe = this.options.nextStripe();
      await pool.query('release', sql.release, [
        holderKey,
        lease.seq,
        settled,
        stripe,
        toMs(visibleAt),
      ]);
    });
  }

  /**
   * Stops renewing, and returns the records of every lease still held to the waiting records (so
   * that others need not wait for them to lapse), their deliveries uncounted. The storage closes.
   */
  async giveBack(): Promise<void> {
    this.renewal.stop();
    if (this.book.clear() === 0) return;
    const { pool, sql, holderKey } = this.options;
    await pool.query('close', sql.giveBack, [holderKey, this.options.nextStripe(), Date.now()]);
  }
}
