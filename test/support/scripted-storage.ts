import type {
  RecordId,
  ReserveOptions,
  Storage,
  StoredRecord,
  UnreadableRecord,
} from '../../lib/index.js';

interface Row<T> {
  readonly id: number;
  readonly record: T;
  attempts: number;
  deliveries: number;
  visibleAt: number;
  /** The storage instance (process) holding the lease, if any. */
  holder: ScriptedStorage<T> | undefined;
  /** Reserve reports it through `onUnreadable` and sets it aside instead of returning it. */
  unreadable: boolean;
}

/**
 * What a durable storage keeps on disk, shared by every `ScriptedStorage` opened over it: records
 * with their attempts and delivery counts, and leases. A "process" is one `ScriptedStorage`;
 * `crash()` kills it (its leases end without ack or release, as under a SIGKILL).
 */
export class DurableState<T> {
  readonly rows = new Map<number, Row<T>>();
  readonly setAside: number[] = [];
  nextId = 1;

  /** Records stored and not leased. */
  get visible(): number {
    let n = 0;
    for (const row of this.rows.values()) if (!row.holder) n++;
    return n;
  }

  /** Records leased by instances that died at least `lapseMs` ago. */
  leasedByDead(lapseMs = 0): Row<T>[] {
    const now = Date.now();
    return [...this.rows.values()].filter((row) => {
      const diedAt = row.holder?.diedAt;
      return diedAt !== undefined && now - diedAt >= lapseMs;
    });
  }

  /** Stores a record with a new id, as an append does; `unreadable` plants a damaged one. */
  store(record: T, unreadable = false): number {
    const id = this.nextId++;
    const row: Row<T> = {
      id,
      record,
      attempts: 0,
      deliveries: 0,
      visibleAt: 0,
      holder: undefined,
      unreadable,
    };
    this.rows.set(id, row);
    return id;
  }

  /** Plants a record that reserve cannot read back. */
  plantUnreadable(record: T): number {
    return this.store(record, true);
  }
}

/** How a restarted instance gets back the leases of a dead one. */
export type LeaseReturn =
  /** At open, as FileStorage does: a lease does not outlive its process. */
  | 'on-open'
  /** From `recover()`, once the lease lapsed (`leaseTimeout`), as Redis and PostgreSQL do. */
  | 'on-recover';

const NEVER = new Promise<never>(() => undefined);

/**
 * A synchronous, durable storage over a `DurableState`, for deterministic crash tests: every
 * record a reserve returns is charged a delivery at once, and after `crash()` the instance
 * answers nothing, ever (its process is gone), so the engine over it freezes as a killed one would.
 */
export class ScriptedStorage<T> implements Storage<T> {
  readonly durable = true;
  readonly shared: boolean;
  readonly idScope = 'scripted';
  readonly recoveryInterval: number | undefined;
  /** When the process died (`crash()`), if it did. */
  diedAt: number | undefined;
  private readonly leaseTimeout: number;
  /** Records this instance reserved, in order: what each delivery looked like. */
  readonly deliveries: StoredRecord<T>[] = [];

  constructor(
    private readonly state: DurableState<T>,
    private readonly leases: LeaseReturn = 'on-open',
    options: { shared?: boolean; recoveryInterval?: number; leaseTimeout?: number } = {},
  ) {
    this.shared = options.shared ?? false;
    this.recoveryInterval = options.recoveryInterval;
    this.leaseTimeout = options.leaseTimeout ?? 0;
    if (leases === 'on-open') for (const row of state.leasedByDead()) row.holder = undefined;
  }

  /** The process dies: nothing it holds is acked or released. */
  crash(): void {
    this.diedAt = Date.now();
  }

  get dead(): boolean {
    return this.diedAt !== undefined;
  }

  append(records: readonly T[]): readonly RecordId[] {
    if (this.dead) return NEVER as never;
    return records.map((record) => this.state.store(record));
  }

  reserve(limit: number, options: ReserveOptions): StoredRecord<T>[] {
    if (this.dead) return NEVER as never;
    const visible = [...this.state.rows.values()].filter(
      (row) => !row.holder && row.visibleAt <= options.now,
    );
    // Due retries first, then fresh records, each oldest first.
    visible.sort((a, b) => Number(b.attempts > 0) - Number(a.attempts > 0) || a.id - b.id);
    const unreadable: UnreadableRecord[] = [];
    const batch: StoredRecord<T>[] = [];
    for (const row of visible) {
      if (batch.length >= limit) break;
      if (row.unreadable) {
        this.state.rows.delete(row.id);
        this.state.setAside.push(row.id);
        unreadable.push({
          id: row.id,
          payload: '\u0000garbage',
          location: `scripted-quarantine#${row.id}`,
          cause: new SyntaxError('unexpected byte'),
        });
        continue;
      }
      row.deliveries++;
      row.holder = this;
      const entry = {
        id: row.id,
        record: row.record,
        attempts: row.attempts,
        deliveries: row.deliveries,
      };
      batch.push(entry);
      this.deliveries.push(entry);
    }
    if (unreadable.length > 0) options.onUnreadable?.(unreadable);
    return batch;
  }

  ack(records: readonly StoredRecord<T>[]): void {
    if (this.dead) return NEVER as never;
    for (const entry of records) {
      if (this.state.rows.get(entry.id as number)?.holder === this) {
        this.state.rows.delete(entry.id as number);
      }
    }
  }

  release(records: readonly StoredRecord<T>[], visibleAt: number): void {
    if (this.dead) return NEVER as never;
    for (const entry of records) {
      const row = this.state.rows.get(entry.id as number);
      if (row?.holder !== this) continue;
      row.holder = undefined;
      row.attempts++;
      row.visibleAt = visibleAt;
    }
  }

  size(): number {
    if (this.dead) return NEVER as never;
    return this.state.visible;
  }

  recover(): number {
    if (this.dead) return NEVER as never;
    if (this.leases === 'on-open') return 0;
    const lapsed = this.state.leasedByDead(this.leaseTimeout);
    for (const row of lapsed) row.holder = undefined;
    return lapsed.length;
  }

  leasedElsewhere(): number {
    if (this.dead) return NEVER as never;
    let n = 0;
    for (const row of this.state.rows.values()) if (row.holder && row.holder !== this) n++;
    return n;
  }

  /** Records this instance holds leased. */
  get leased(): number {
    let n = 0;
    for (const row of this.state.rows.values()) if (row.holder === this) n++;
    return n;
  }

  close(): void {}
}
