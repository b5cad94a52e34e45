import { LeaseRenewal } from '../lease-renewal.js';
import type { BufferContext } from './batch-reads.js';
import { isUnavailable, storageFailure } from './redis-connection.js';
import { ACK, RELEASE, RENEW, TRIM } from './scripts.js';

/** What `HeldLeases` needs from its storage. */
export interface HeldLeasesOptions extends Pick<
  BufferContext,
  'connection' | 'keys' | 'group' | 'consumer' | 'leaseTimeout'
> {
  /** The buffer's keys, in script order. */
  readonly keyList: readonly string[];
  /** Receives a failed renewal, and acks given up. */
  report(error: unknown): void;
}

/**
 * The records this instance leased and has not acked or released: renewed while held (stream
 * entries with a plain `XCLAIM … JUSTID`, records from `due` with RENEW), acknowledged (stream
 * entries with `XACK` and a trim, records from `due` with ACK), released (RELEASE), and kept for
 * another ack when an ack met an unreachable Redis.
 */
export class HeldLeases {
  private readonly renewal: LeaseRenewal;
  /** Of those held, the ones leased from `due` (the others are pending entries of the stream). */
  private readonly fromDue = new Set<string>();
  /** Records processed whose ack failed (Redis was unreachable): acked again before other work. */
  private readonly unacked = new Set<string>();

  constructor(private readonly options: HeldLeasesOptions) {
    this.renewal = new LeaseRenewal({
      leaseTimeout: options.leaseTimeout,
      renew: (ids) => this.renew(ids),
      report: (error) => options.report(error),
    });
  }

  /** How many leases are held. */
  get size(): number {
    return this.renewal.size;
  }

  /** Starts renewing the leases of `ids`; `fromDue` names those leased from `due`. */
  hold(ids: readonly string[], fromDue: readonly string[]): void {
    this.renewal.hold(ids);
    for (const id of fromDue) this.fromDue.add(id);
  }

  /** Stops holding `ids`: acked, released, set aside, or given up (their leases then lapse). */
  forget(ids: readonly string[]): void {
    this.renewal.forget(ids);
    if (this.fromDue.size > 0) for (const id of ids) this.fromDue.delete(id);
    if (this.unacked.size > 0) for (const id of ids) this.unacked.delete(id);
  }

  /** Stops renewing for good. */
  stop(): void {
    this.renewal.stop();
    this.fromDue.clear();
  }

  /**
   * Acknowledges processed records. When Redis is unreachable it rejects but, with `keep`, holds
   * the leases and acks again before the next reserve or recover (`retryUnacked`), so that the
   * batch is not processed again after the outage.
   */
  async ack(ids: readonly string[], keep: boolean): Promise<void> {
    try {
      await this.acknowledge(ids);
    } catch (error) {
      if (isUnavailable(error) && keep) {
        for (const id of ids) this.unacked.add(id);
      } else {
        this.forget(ids);
      }
      throw error;
    }
    this.forget(ids);
  }

  /**
   * Moves leased records, with one more attempt, to the retry set scored by `visibleAt`. Whether
   * this succeeds or fails, they are no longer held: if it failed, they stay leased without
   * renewal, and come back when their lease expires.
   */
  async release(ids: readonly string[], visibleAt: number): Promise<void> {
    const { connection, keyList, group, consumer } = this.options;
    const at = Number.isFinite(visibleAt) ? visibleAt : visibleAt > 0 ? '+inf' : 0;
    try {
      await connection.script('release', RELEASE, keyList, [group, consumer, at, ...ids]);
    } finally {
      this.forget(ids);
    }
  }

  /** Acks again what an outage left unacked; rejects while Redis is still unreachable. */
  async retryUnacked(): Promise<void> {
    if (this.unacked.size === 0) return;
    const ids = [...this.unacked];
    try {
      await this.acknowledge(ids);
    } catch (error) {
      if (isUnavailable(error)) throw error;
      // Refused rather than unreachable: stop holding them; their leases expire and the records
      // are processed again (at least once), rather than every reserve failing from now on.
      this.forget(ids);
      this.options.report(error);
      return;
    }
    this.forget(ids);
  }

  /**
   * Stream records: `XACK` and TRIM in one round trip; those TRIM could not reach (acks out of
   * order) get an `XDEL`. Records from `due`, and stream records that were no longer pending
   * (recovered elsewhere meanwhile), go through the ACK script, which removes them wherever.
   */
  private async acknowledge(ids: readonly string[]): Promise<void> {
    const [fromStream, fromDue] = this.bySource(ids);
    const { connection, keys, keyList, group } = this.options;
    const results = await connection.run('ack', () => {
      const pipeline = connection.client.pipeline();
      if (fromStream.length > 0) {
        pipeline.xack(keys.stream, group, ...fromStream);
        TRIM.queue(pipeline, keyList, [group]);
      }
      if (fromDue.length > 0) ACK.queue(pipeline, keyList, [group, ...fromDue]);
      return pipeline.exec();
    });
    const replies = results ?? [];
    let anywhere: readonly string[] = [];
    if (fromStream.length > 0) {
      const [ackError, acked] = replies[0] ?? [new Error('no reply to XACK')];
      if (ackError) throw storageFailure('ack', ackError);
      const floor = String(await connection.queued('ack', replies[1], TRIM, keyList, [group]));
      if (Number(acked) < fromStream.length || floor === '') {
        anywhere = fromStream;
      } else {
        const above = fromStream.filter((id) => compareIds(id, floor) >= 0);
        if (above.length > 0) {
          await connection.run('ack', () => connection.client.xdel(keys.stream, ...above));
        }
      }
    }
    if (fromDue.length > 0) {
      const result = replies[fromStream.length > 0 ? 2 : 0];
      await connection.queued('ack', result, ACK, keyList, [group, ...fromDue]);
    }
    if (anywhere.length > 0) await connection.script('ack', ACK, keyList, [group, ...anywhere]);
  }

  /** Extends leases: stream entries with `XCLAIM … JUSTID`, records from `due` with RENEW. */
  private async renew(ids: readonly string[]): Promise<void> {
    const [fromStream, fromDue] = this.bySource(ids);
    const { connection, keys, keyList, group, consumer, leaseTimeout } = this.options;
    const results = await connection.run('lease renewal', () => {
      const pipeline = connection.client.pipeline();
      if (fromStream.length > 0) {
        pipeline.xclaim(keys.stream, group, consumer, 0, ...fromStream, 'JUSTID');
      }
      if (fromDue.length > 0) RENEW.queue(pipeline, keyList, [consumer, leaseTimeout, ...fromDue]);
      return pipeline.exec();
    });
    const replies = results ?? [];
    if (fromStream.length > 0 && replies[0]?.[0]) {
      throw storageFailure('lease renewal', replies[0][0]);
    }
    if (fromDue.length > 0) {
      const result = replies[fromStream.length > 0 ? 1 : 0];
      await connection.queued('lease renewal', result, RENEW, keyList, [
        consumer,
        leaseTimeout,
        ...fromDue,
      ]);
    }
  }

  /** Leased ids split by where they were leased from: the stream, and `due`. */
  private bySource(ids: readonly string[]): [readonly string[], readonly string[]] {
    if (this.fromDue.size === 0) return [ids, []];
    return [ids.filter((id) => !this.fromDue.has(id)), ids.filter((id) => this.fromDue.has(id))];
  }
}

/**
 * Compares two stream ids (`<ms>-<seq>`, decimal, no leading zeros) in stream order: by the length
 * of each part, then digit by digit. Called for every acked id: it allocates nothing.
 */
export function compareIds(a: string, b: string): number {
  const dashA = a.indexOf('-');
  const dashB = b.indexOf('-');
  if (dashA !== dashB) return dashA - dashB;
  for (let i = 0; i < dashA; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  const seqA = a.length - dashA;
  const seqB = b.length - dashB;
  if (seqA !== seqB) return seqA - seqB;
  for (let i = 1; i < seqA; i++) {
    const d = a.charCodeAt(dashA + i) - b.charCodeAt(dashB + i);
    if (d !== 0) return d;
  }
  return 0;
}
