import { performance } from 'node:perf_hooks';

/** Order statistics of a list of measurements (rounds, or individual latencies). */
export interface Summary {
  readonly median: number;
  readonly p25: number;
  readonly p75: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/** One number measured for one contender, summarized over rounds. */
export interface Measurement {
  readonly contender: string;
  readonly metric: string;
  readonly unit: string;
  readonly summary: Summary;
  /** Median over rounds of this contender's value divided by the baseline's in the same round. */
  readonly ratio?: { readonly to: string; readonly summary: Summary };
  /** Anything else worth keeping in the JSON (row counts, batch sizes, checks). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** A goal stated in the issue, and whether this run met it. */
export interface Target {
  readonly name: string;
  readonly goal: string;
  readonly measured: string;
  /** `null` when the run could not measure it (a service or a storage missing). */
  readonly met: boolean | null;
}

/** A table of formatted cells, for stdout and the markdown document. */
export interface Table {
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** What a suite hands to the report. */
export interface SuiteResult {
  readonly id: string;
  readonly title: string;
  /** Markdown paragraphs (or list items) saying what was measured and how. */
  readonly method: readonly string[];
  readonly tables: readonly Table[];
  readonly measurements: readonly Measurement[];
  readonly targets: readonly Target[];
  /** Why some contenders or the whole suite did not run. */
  readonly notes: readonly string[];
  readonly seconds: number;
}

/** How hard a suite works: the quick mode must keep the whole run under two minutes. */
export interface RunConfig {
  readonly quick: boolean;
  /** Progress lines go here (stderr), so stdout keeps only the tables. */
  readonly log: (line: string) => void;
}

/** Linear interpolation between order statistics, `q` from 0 to 1. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}

/** Sorts a copy. Typed arrays sort numerically; plain arrays need a comparator. */
export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

export function summarize(values: ArrayLike<number>): Summary {
  const s = sorted(values);
  return {
    median: quantile(s, 0.5),
    p25: quantile(s, 0.25),
    p75: quantile(s, 0.75),
    min: s.length > 0 ? s[0]! : NaN,
    max: s.length > 0 ? s[s.length - 1]! : NaN,
    n: s.length,
  };
}

/** Element-wise `a[i] / b[i]`: ratios taken within a round, where both saw the same noise. */
export function ratios(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) out.push(a[i]! / b[i]!);
  return out;
}

/**
 * The order of the contenders in a round: rotated by one each round, and reversed every other
 * round (A B C, C B A... then B C A, A C B...), so that nobody always goes first and nobody always
 * follows the same neighbour (whose aftermath, a checkpoint or a collection, it would inherit).
 */
export function roundOrder<C>(contenders: readonly C[], round: number): C[] {
  const n = contenders.length;
  const rotated = contenders.map((_, k) => contenders[(k + Math.floor(round / 2)) % n]!);
  return round % 2 === 0 ? rotated : rotated.reverse();
}

/** Runs every contender once per round, in `roundOrder`, so noise lands on all of them alike. */
export async function interleave<C>(
  contenders: readonly C[],
  rounds: number,
  run: (contender: C, round: number) => Promise<void>,
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (const contender of roundOrder(contenders, round)) await run(contender, round);
  }
}

/** Milliseconds, high resolution. */
export const now = (): number => performance.now();

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** A promise with its resolver outside, for gates and completion signals. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Heap in use after full collections; needs `node --expose-gc` (the bench script passes it). */
export function settledHeap(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run node with --expose-gc (npm run bench does) to measure memory');
  // Twice: the first pass may only finalize what the second can then free.
  gc();
  gc();
}

export function hasGc(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === 'function';
}

/** Least-squares slope of `ys` against `xs`, in y units per x unit. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < n; i++) {
    sx += xs[i]!;
    sy += ys[i]!;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx;
    num += dx * (ys[i]! - my);
    den += dx * dx;
  }
  return den === 0 ? 0 : num / den;
}

// ---------------------------------------------------------------------------------------------
// Formatting, shared by the suites' tables

/** A number with three significant digits, thousands grouped: 1,234,567 / 12.3 / 0.123. */
export function fmt(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 10 ** digits) return Math.round(value).toLocaleString('en-US');
  return Number(value.toPrecision(digits)).toLocaleString('en-US', {
    maximumFractionDigits: 6,
  });
}

/** `median (p25–p75)` or `median (min–max)`. */
export function fmtSummary(s: Summary, spread: 'iqr' | 'range' = 'range'): string {
  const [lo, hi] = spread === 'iqr' ? [s.p25, s.p75] : [s.min, s.max];
  if (s.n <= 1) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(lo)}–${fmt(hi)})`;
}

/** A ratio as `12.3×`. */
export function fmtRatio(value: number): string {
  return `${fmt(value)}×`;
}

export function fmtBytes(bytes: number): string {
  const abs = Math.abs(bytes);
  if (abs >= 1024 * 1024) return `${fmt(bytes / (1024 * 1024))} MiB`;
  if (abs >= 1024) return `${fmt(bytes / 1024)} KiB`;
  return `${fmt(bytes)} B`;
}
