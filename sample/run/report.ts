import type { DrainSummary } from '@risemaxi/bufio';
import type { LoadResult } from './load.js';

/** Everything the final report says. */
export interface RunReport {
  readonly load: LoadResult;
  readonly batches: number;
  readonly rows: number;
  readonly drain: DrainSummary | undefined;
  readonly shutdownMs: number;
  readonly totalMs: number;
  readonly dbPath: string;
  /** Records a durable storage held from an earlier run when the app started (written too). */
  readonly recovered?: number;
}

const n = (value: number): string => value.toLocaleString('en-US');
const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The report, as lines; `ok` says whether every accepted record is in the database. */
export function formatReport(r: RunReport): { lines: string[]; ok: boolean } {
  const { accepted } = r.load;
  const refused = Object.entries(r.load.refused)
    .map(([status, count]) => `${n(count)} (HTTP ${status})`)
    .join(', ');
  const recovered = r.recovered ?? 0;
  // A durable storage keeps what a timed-out drain could not write, for the next start.
  const remaining = r.drain?.remaining ?? 0;
  const expected = accepted + recovered;
  const ok = r.rows + remaining === expected;
  const saved = accepted - r.batches;
  const lines = [
    '',
    'BufIO sample report',
    `  records accepted        ${n(accepted)} (HTTP 202, ${n(r.load.requests)} requests)`,
  ];
  if (refused) lines.push(`  records refused         ${refused}`);
  if (recovered > 0) {
    lines.push(`  records recovered       ${n(recovered)} (left in the journal by an earlier run)`);
  }
  if (r.load.unanswered > 0)
    lines.push(`  requests unanswered     ${n(r.load.unanswered)} records`);
  lines.push(
    `  batches written         ${n(r.batches)}`,
    `  mean batch size         ${r.batches === 0 ? '-' : (accepted / r.batches).toFixed(1)}`,
    `  rows in the database    ${n(r.rows)} ${rowsVerdict(remaining, recovered, accepted, ok)}`,
    `  database writes         ${n(r.batches)} transactions instead of ${n(accepted)} (one per record): ` +
      `${n(Math.max(0, saved))} saved${accepted > 0 ? `, ${((100 * saved) / accepted).toFixed(1)}%` : ''}`,
  );
  if (r.drain) {
    lines.push(
      `  drained at shutdown     ${n(r.drain.processed)} records in ${r.drain.durationMs} ms` +
        (r.drain.timedOut ? ' (timed out)' : ''),
    );
  }
  lines.push(
    `  time                    ${s(r.totalMs)} (load ${s(r.load.durationMs)}, ` +
      `${n(Math.round((accepted * 1000) / Math.max(1, r.load.durationMs)))} records/s; shutdown ${s(r.shutdownMs)})`,
    `  database                ${r.dbPath}`,
    '',
  );
  return { lines, ok };
}

function rowsVerdict(remaining: number, recovered: number, accepted: number, ok: boolean): string {
  const what = recovered > 0 ? 'records accepted + recovered' : 'records accepted';
  if (!ok) return `!= ${what} (${n(accepted + recovered)}): RECORDS LOST`;
  if (remaining > 0) return `+ ${n(remaining)} left in the journal = ${what}`;
  return `= ${what}`;
}
