import { Injectable } from '@nestjs/common';
import type { BufIO, BufIOStats, PushOptions } from '../core/bufio.js';
import { BufIORegistry } from './bufio.registry.js';

/**
 * The application's buffers by name: for code that picks a buffer at run time, admin endpoints
 * and health checks. To use one known buffer, inject it with `@InjectBuffer(name)`.
 */
@Injectable()
export class BufIOService {
  constructor(private readonly registry: BufIORegistry) {}

  /**
   * The buffer registered as `name`.
   *
   * @throws UnknownBufferError when no buffer has that name.
   */
  get<T = unknown, U = unknown>(name: string): BufIO<T, U> {
    return this.registry.get(name).buffer as unknown as BufIO<T, U>;
  }

  /**
   * Pushes one record, or an array of records, into buffer `name` (see `BufIO.push`).
   *
   * @throws UnknownBufferError (as a rejection) when no buffer has that name.
   */
  push<T>(name: string, records: T | readonly T[], options?: PushOptions): Promise<void> {
    let buffer: BufIO<unknown, unknown>;
    try {
      buffer = this.registry.get(name, 'BufIOService.push()').buffer;
    } catch (error) {
      return Promise.reject(error); // like BufIO.push: every failure is a rejection
    }
    return buffer.push(records, options);
  }

  /** Flushes every buffer; resolves when each record buffered now has had its attempt. */
  async flushAll(): Promise<void> {
    await Promise.all(this.registry.all().map((entry) => entry.buffer.flush()));
  }

  /** Every buffer's counters, by name. */
  stats(): Record<string, BufIOStats> {
    const stats: Record<string, BufIOStats> = {};
    for (const entry of this.registry.all()) stats[entry.name] = entry.buffer.stats();
    return stats;
  }

  /** The names of the registered buffers. */
  names(): string[] {
    return this.registry.names();
  }
}
