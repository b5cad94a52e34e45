import type { BufIO, BufIOState } from '../core/bufio.js';
import { asError } from '../core/errors.js';
import type { ResolvedHealthOptions } from './health-options.js';

/** One buffer's health, as the indicator reports it. */
export interface BufferHealth {
  readonly status: 'up' | 'down';
  /** Why it is down; empty when it is up. */
  readonly reasons: readonly string[];
  readonly state: BufIOState;
  /** Whether `storage.size()` answered within `storageTimeout`. */
  readonly storage: 'reachable' | 'unreachable';
  readonly buffered: number;
  readonly capacity: number;
  /** `buffered / capacity`, rounded to 3 decimals. */
  readonly fillRatio: number;
  /** How long the buffer has been at or above `maxFillRatio`, in ms, from the checks; 0 if not. */
  readonly fullForMs: number;
  /** Records dead-lettered since the buffer was created. */
  readonly deadLettered: number;
  /** Records dead-lettered since the previous check. */
  readonly newDeadLetters: number;
}

/** What a check remembers of a buffer for the next one. */
interface Memory {
  /** When a check first saw the buffer full, in this run of full checks. */
  fullSince: number | undefined;
  deadLettered: number;
}

type AnyBufIO = BufIO<unknown, unknown>;

/**
 * Checks buffers, remembering between checks what the fill and dead-letter rules need. Free of
 * NestJS: `BufIOHealthIndicator` keeps one per health key.
 */
export class BufferHealthChecker {
  private readonly memory = new WeakMap<AnyBufIO, Memory>();

  /** @param clock epoch ms; replaceable in tests. */
  constructor(private readonly clock: () => number = Date.now) {}

  /** Checks each buffer (their storages in parallel), by name. */
  async check<T, U>(
    buffers: readonly BufIO<T, U>[],
    options: ResolvedHealthOptions,
  ): Promise<Record<string, BufferHealth>> {
    const results = await Promise.all(
      buffers.map((buffer) => this.checkOne(buffer as unknown as AnyBufIO, options)),
    );
    const report: Record<string, BufferHealth> = {};
    buffers.forEach((buffer, i) => {
      report[buffer.name] = results[i]!;
    });
    return report;
  }

  private async checkOne(buffer: AnyBufIO, options: ResolvedHealthOptions): Promise<BufferHealth> {
    const reasons: string[] = [];
    const storageProblem = await reachStorage(buffer, options.storageTimeout);
    const now = this.clock();
    const stats = buffer.stats();
    let memory = this.memory.get(buffer);
    if (!memory) {
      memory = { fullSince: undefined, deadLettered: 0 };
      this.memory.set(buffer, memory);
    }

    if (stats.state !== 'running') reasons.push(`buffer is ${stats.state}, not running`);
    if (storageProblem !== undefined) reasons.push(storageProblem);

    const fillRatio = stats.capacity > 0 ? stats.buffered / stats.capacity : 0;
    let fullForMs = 0;
    if (fillRatio >= options.maxFillRatio) {
      memory.fullSince ??= now;
      fullForMs = now - memory.fullSince;
      if (fullForMs >= options.fillDuration) {
        reasons.push(
          `${percent(fillRatio)} full (${stats.buffered} of ${stats.capacity} records) for ` +
            `${fullForMs} ms, at or above maxFillRatio ${options.maxFillRatio} for fillDuration ` +
            `${options.fillDuration} ms`,
        );
      }
    } else {
      memory.fullSince = undefined;
    }

    const newDeadLetters = Math.max(0, stats.deadLettered - memory.deadLettered);
    memory.deadLettered = stats.deadLettered;
    if (options.deadLetters && newDeadLetters > 0) {
      reasons.push(`${newDeadLetters} record(s) dead-lettered since the previous check`);
    }

    return {
      status: reasons.length === 0 ? 'up' : 'down',
      reasons,
      state: stats.state,
      storage: storageProblem === undefined ? 'reachable' : 'unreachable',
      buffered: stats.buffered,
      capacity: stats.capacity,
      fillRatio: Math.round(fillRatio * 1000) / 1000,
      fullForMs,
      deadLettered: stats.deadLettered,
      newDeadLetters,
    };
  }
}

/** Asks the storage its size; returns what went wrong, or undefined if it answered in time. */
async function reachStorage(buffer: AnyBufIO, timeout: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<string>((resolve) => {
    timer = setTimeout(
      () => resolve(`storage did not answer size() within storageTimeout (${timeout} ms)`),
      timeout,
    );
  });
  try {
    const asked = Promise.resolve()
      .then(() => buffer.storage.size())
      .then(
        () => undefined,
        (error: unknown) => `storage unreachable: ${asError(error).message}`,
      );
    return await Promise.race([asked, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function percent(ratio: number): string {
  return `${Math.round(ratio * 1000) / 10}%`;
}
