import type { DrainSummary } from '../../lib/index.js';
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
}

const n = (value: number): string => value.toLocaleString('en-US');
const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The report, as lines; `ok` says whether every accepted record is in the database. */
export function formatReport(r: RunReport): { lines: string[]; ok: boolean } {
  const { accepted } = r.load;
  const refused = Object.entries(r.load.refused)
    .map(([status, count]) => `${n(count)} (HTTP ${status})`)
    .join(', ');
  const ok = r.rows === accepted;
  const saved = accepted - r.batches;
  const lines = [
    '',
    'BufIO sample report',
    `  records accepted        ${n(accepted)} (HTTP 202, ${n(r.load.requests)} requests)`,
  ];
  if (refused) lines.push(`  records refused         ${refused}`);
  if (r.load.unanswered > 0)
    lines.push(`  requests unanswered     ${n(r.load.unanswered)} records`);
  lines.push(
    `  batches written         ${n(r.batches)}`,
    `  mean batch size         ${r.batches === 0 ? '-' : (accepted / r.batches).toFixed(1)}`,
    `  rows in the database    ${n(r.rows)} ${ok ? '= records accepted' : `!= records accepted (${n(accepted)}): RECORDS LOST`}`,
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
