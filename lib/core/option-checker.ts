import { InvalidOptionsError } from './errors.js';
import type { CoalesceOptions, FlushTimers, PriorityOptions, ResolvedPriority } from './options.js';
import type { Storage } from './storage.js';
import type { Worker, WorkFunction } from './worker.js';

/** Validates one option at a time; every failure names the buffer, the option and the value. */
export class OptionChecker {
  constructor(private readonly context: string) {}

  fail(option: string, value: unknown, expected: string): never {
    throw new InvalidOptionsError(option, value, expected, this.context);
  }

  /**
   * Refuses options that are not an object, or that name an option not in `known` (a misspelling
   * would otherwise be ignored silently).
   */
  known(
    options: unknown,
    known: ReadonlySet<string>,
    expected = 'an object',
  ): Record<string, unknown> {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      return this.fail('options', options, expected);
    }
    for (const [key, value] of Object.entries(options)) {
      if (!known.has(key)) this.fail(key, value, 'no such option');
    }
    return options as Record<string, unknown>;
  }

  integer(option: string, value: unknown, fallback: number, min: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      this.fail(option, value, `an integer >= ${min}`);
    }
    return value;
  }

  optionalInteger(option: string, value: unknown, min: number): number | undefined {
    return value === undefined ? undefined : this.integer(option, value, 0, min);
  }

  number(option: string, value: unknown, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      this.fail(option, value, `a finite number from ${min} to ${max}`);
    }
    return value;
  }

  optionalNumber(option: string, value: unknown, min: number, max: number): number | undefined {
    return value === undefined ? undefined : this.number(option, value, 0, min, max);
  }

  oneOf<V extends string>(option: string, value: unknown, fallback: V, allowed: readonly V[]): V {
    if (value === undefined) return fallback;
    if (!allowed.includes(value as V)) {
      this.fail(option, value, `one of ${allowed.map((v) => `'${v}'`).join(', ')}`);
    }
    return value as V;
  }

  optionalFunction<F>(option: string, value: F | undefined): F | undefined {
    if (value !== undefined && typeof value !== 'function') this.fail(option, value, 'a function');
    return value;
  }

  worker<T, U>(option: string, value: unknown): Worker<T, U> {
    if (typeof value === 'function') return { work: value as WorkFunction<T, U> };
    if (
      value !== null &&
      typeof value === 'object' &&
      typeof (value as Worker<T, U>).work === 'function'
    ) {
      return value as Worker<T, U>;
    }
    return this.fail(option, value, 'a function or an object with a work(records) method');
  }

  timers(option: string, value: unknown): FlushTimers {
    const timers = value as FlushTimers | null;
    if (
      timers === null ||
      typeof timers !== 'object' ||
      typeof timers.set !== 'function' ||
      typeof timers.clear !== 'function'
    ) {
      this.fail(option, value, 'an object with set(callback, delay) and clear(handle)');
    }
    return timers;
  }

  boolean(option: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.fail(option, value, 'true or false');
    return value;
  }

  coalesce<T>(value: CoalesceOptions<T>): Readonly<Required<CoalesceOptions<T>>> {
    if (value === null || typeof value !== 'object') this.fail('coalesce', value, 'an object');
    if (typeof value.key !== 'function') this.fail('coalesce.key', value.key, 'a function');
    const merge = this.optionalFunction('coalesce.merge', value.merge);
    return { key: value.key, merge: merge ?? ((_older: T, newer: T) => newer) };
  }

  priority(value: PriorityOptions): ResolvedPriority {
    if (value === null || typeof value !== 'object') this.fail('priority', value, 'an object');
    const { lanes } = value;
    let names: string[];
    if (typeof lanes === 'number') {
      names = Array.from({ length: this.integer('priority.lanes', lanes, 1, 1) }, (_, i) =>
        String(i),
      );
    } else if (
      Array.isArray(lanes) &&
      lanes.length > 0 &&
      lanes.every((l) => typeof l === 'string' && l.length > 0) &&
      new Set(lanes).size === lanes.length
    ) {
      names = [...lanes];
    } else {
      return this.fail(
        'priority.lanes',
        lanes,
        'a number of lanes, or distinct non-empty lane names',
      );
    }
    if (names.length > 512) this.fail('priority.lanes', lanes, 'at most 512 lanes');
    const defaultLane =
      value.defaultLane === undefined ? names.length - 1 : laneIndex(names, value.defaultLane);
    if (defaultLane < 0) {
      this.fail(
        'priority.defaultLane',
        value.defaultLane,
        `one of the lanes (${names.join(', ')})`,
      );
    }
    return { names, defaultLane, share: this.number('priority.share', value.share, 0.1, 0, 1) };
  }

  storage<T>(option: string, value: unknown): Storage<T> {
    const methods = ['append', 'reserve', 'ack', 'release', 'size', 'recover', 'close'];
    const missing =
      value === null || typeof value !== 'object'
        ? methods
        : methods.filter((m) => typeof (value as Record<string, unknown>)[m] !== 'function');
    if (missing.length > 0) {
      this.fail(option, value, `a Storage (missing: ${missing.join(', ')})`);
    }
    return value as Storage<T>;
  }
}

/** The index of a lane given by name or number, or -1. */
export function laneIndex(names: readonly string[], lane: string | number): number {
  if (typeof lane === 'number')
    return Number.isInteger(lane) && lane >= 0 && lane < names.length ? lane : -1;
  return names.indexOf(lane);
}

/**
 * The lane of a push: the default lane when it names none; `undefined` for a buffer without lanes.
 *
 * @throws InvalidOptionsError for a lane the buffer does not have.
 */
export function laneOf(
  priority: ResolvedPriority | undefined,
  requested: string | number | undefined,
  name: string,
): number | undefined {
  if (requested === undefined) return priority?.defaultLane;
  const lane = priority ? laneIndex(priority.names, requested) : -1;
  if (lane < 0) {
    const expected = priority
      ? `one of the lanes (${priority.names.join(', ')})`
      : 'no priority: the "priority" option is not set';
    throw new InvalidOptionsError('priority', requested, expected, `push to buffer "${name}"`);
  }
  return lane;
}
