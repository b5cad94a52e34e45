import { readFile } from 'node:fs/promises';
import type pg from 'pg';

/** What a workload cost the PostgreSQL server. */
export interface ServerCost {
  /** WAL written, from `pg_current_wal_lsn()` deltas: the whole cluster's, see below. */
  readonly walBytes: number;
  /** CPU (user + system) of the workload's backends, in ms, from `/proc/<pid>/stat`. */
  readonly cpuMs: number;
  /** Row versions written to the workload's tables: inserts, updates (HOT among them), deletes. */
  readonly rows: RowWrites;
}

export interface RowWrites {
  readonly inserted: number;
  readonly updated: number;
  readonly hot: number;
  readonly deleted: number;
}

const NO_ROWS: RowWrites = { inserted: 0, updated: 0, hot: 0, deleted: 0 };

/** Clock ticks per second of `/proc/<pid>/stat` (USER_HZ: 100 on Linux). */
const TICKS_PER_SECOND = 100;

/**
 * Measures what a workload costs the server, from outside it: PostgreSQL runs on this machine,
 * so the CPU of the backends serving the workload (found by their `application_name`) is read
 * from `/proc`, sampled every 100 ms so that a backend which exits before the end (a pool closed
 * with its storage) still counts up to its last sample. WAL is the cluster's LSN delta: other
 * sessions on a shared server add to it (never subtract), so quiet rounds are the truthful ones.
 * Row writes come from `pg_stat_user_tables` once the workload's connections have closed (a
 * backend flushes its table counters when it exits).
 */
export class ServerCostProbe {
  private readonly startCpu = new Map<number, number>();
  private readonly lastCpu = new Map<number, number>();
  private startLsn = 0n;
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();
  private stopped: Promise<{ walBytes: number; cpuMs: number }> | undefined;

  constructor(
    private readonly admin: pg.Client,
    private readonly application: string,
  ) {}

  async start(): Promise<void> {
    this.startLsn = await this.lsn();
    for (const [pid, ticks] of await this.backendTicks()) {
      this.startCpu.set(pid, ticks);
      this.lastCpu.set(pid, ticks);
    }
    this.timer = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample()).catch(() => undefined);
    }, 100);
  }

  /**
   * Ends the CPU and WAL measurement (call it before the workload closes its connections); later
   * calls return the same figures.
   */
  stop(): Promise<{ walBytes: number; cpuMs: number }> {
    this.stopped ??= this.finish();
    return this.stopped;
  }

  private async finish(): Promise<{ walBytes: number; cpuMs: number }> {
    clearInterval(this.timer);
    await this.sampling;
    await this.sample();
    const walBytes = Number((await this.lsn()) - this.startLsn);
    let ticks = 0;
    for (const [pid, last] of this.lastCpu) ticks += last - (this.startCpu.get(pid) ?? 0);
    return { walBytes, cpuMs: (ticks * 1000) / TICKS_PER_SECOND };
  }

  /** Row writes on `tables` (schema-qualified or in the search path), read once they are flushed. */
  static async rowWrites(admin: pg.Client, tables: readonly string[]): Promise<RowWrites> {
    if (tables.length === 0) return NO_ROWS;
    const result = await admin.query<{ ins: string; upd: string; hot: string; del: string }>(
      `SELECT coalesce(sum(n_tup_ins), 0)::text AS ins, coalesce(sum(n_tup_upd), 0)::text AS upd,
              coalesce(sum(n_tup_hot_upd), 0)::text AS hot, coalesce(sum(n_tup_del), 0)::text AS del
       FROM pg_stat_user_tables WHERE relid = ANY ($1::regclass[])`,
      [tables],
    );
    const row = result.rows[0];
    return {
      inserted: Number(row?.ins ?? 0),
      updated: Number(row?.upd ?? 0),
      hot: Number(row?.hot ?? 0),
      deleted: Number(row?.del ?? 0),
    };
  }

  /** The tables of a schema: what pg-boss creates for itself. */
  static async tablesOf(admin: pg.Client, schema: string): Promise<string[]> {
    const result = await admin.query<{ name: string }>(
      `SELECT format('%I.%I', schemaname, relname) AS name FROM pg_stat_user_tables WHERE schemaname = $1`,
      [schema],
    );
    return result.rows.map((row) => row.name);
  }

  private async sample(): Promise<void> {
    for (const [pid, ticks] of await this.backendTicks()) {
      if (!this.startCpu.has(pid)) this.startCpu.set(pid, 0); // started during the workload
      this.lastCpu.set(pid, ticks);
    }
  }

  private async lsn(): Promise<bigint> {
    const result = await this.admin.query<{ lsn: string }>(
      `SELECT (pg_current_wal_lsn() - '0/0')::text AS lsn`,
    );
    return BigInt(result.rows[0]?.lsn ?? '0');
  }

  private async backendTicks(): Promise<Map<number, number>> {
    const result = await this.admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [this.application],
    );
    const ticks = new Map<number, number>();
    for (const { pid } of result.rows) {
      try {
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        // Fields after the command name (which may hold spaces): utime and stime are 14th, 15th.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks.set(pid, Number(fields[11]) + Number(fields[12]));
      } catch {
        // Exited since the query: its last sample stands.
      }
    }
    return ticks;
  }
}
