import type { EventEmitter } from 'node:events';
import { Injectable } from '@nestjs/common';
import { Observable } from 'rxjs';
import type { BufIO, BufIOStats, PushOptions } from '../core/bufio.js';
import type { DrainSummary } from '../core/events.js';
import { BufIORegistry } from './bufio.registry.js';
import type { BufferEventName, BufferEventPayload } from './interfaces/buffer-event.interface.js';

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

  /**
   * Buffer `name`'s `event`s as an Observable, for code that composes them with RxJS (a
   * dashboard over SSE, a `bufferTime` of failures). Each subscription listens from the moment
   * it subscribes and stops listening when it unsubscribes. The buffer emits nothing after its
   * `drained` event, at the end of its shutdown, so every subscription completes then (a
   * subscription to `drained` receives the summary first).
   *
   * @throws UnknownBufferError when no buffer has that name.
   *
   * @example
   * this.bufio.observe<'deadLettered', EventDto>('events', 'deadLettered')
   *   .subscribe(({ records, error }) => alerts.notify(records.length, error));
   */
  observe<E extends BufferEventName, T = unknown, U = unknown>(
    name: string,
    event: E,
  ): Observable<BufferEventPayload<E, T, U>> {
    const buffer = this.registry.get(name, 'BufIOService.observe()').buffer as unknown as BufIO<
      T,
      U
    >;
    return new Observable<BufferEventPayload<E, T, U>>((subscriber) => {
      const next = (payload: BufferEventPayload<E, T, U>): void => subscriber.next(payload);
      const drained = (summary: DrainSummary): void => {
        if (event === 'drained') subscriber.next(summary as BufferEventPayload<E, T, U>);
        subscriber.complete();
      };
      // By an untyped view: TypeScript cannot narrow the emitter's listener type by a generic name.
      const emitter: EventEmitter = buffer;
      if (event !== 'drained') emitter.on(event, next);
      emitter.on('drained', drained);
      return () => {
        emitter.off(event, next);
        emitter.off('drained', drained);
      };
    });
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
