import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { Injectable, Module, type ModuleMetadata } from '@nestjs/common';
import { bufferCount, firstValueFrom, toArray } from 'rxjs';
import { BufIOError } from '../../lib/index.js';
import {
  BufIOModule,
  BufIOService,
  type BufferEventPayload,
  UnknownBufferError,
} from '../../lib/nest/index.js';
import { drain } from '../../lib/testing/index.js';
import { useNestApps } from '../support/nest-apps.js';

interface Counter {
  name: string;
  value: number;
}

const apps = useNestApps();
const boot = (...imports: NonNullable<ModuleMetadata['imports']>) => apps.boot({ imports });

describe('typed options (strict: each callback takes the record type it declares)', () => {
  it('forFeature infers the record type from coalesce, worker, deadLetter and onError', async () => {
    const written: Counter[][] = [];
    const failures: string[] = [];
    const context = await boot(
      BufIOModule.forFeature({
        name: 'counters',
        coalesce: {
          key: (c: Counter) => c.name,
          merge: (a: Counter, b: Counter) => ({ name: a.name, value: a.value + b.value }),
        },
        worker: async (rows: Counter[]) => {
          if (rows.some((r) => r.value < 0)) throw new Error('negative');
          written.push(rows);
        },
        retry: { maxAttempts: 1 },
        onError: (error: Error, rows: readonly Counter[]) => {
          failures.push(`${error.message}: ${rows.map((r) => r.name).join()}`);
        },
        deadLetter: (rows: readonly Counter[]) => {
          failures.push(`dead: ${rows.map((r) => r.name).join()}`);
        },
      }),
    );
    const counters = context.get(BufIOService).get<Counter>('counters');
    await counters.push([
      { name: 'a', value: 1 },
      { name: 'b', value: 2 },
      { name: 'a', value: 3 },
    ]);
    await drain(counters);
    expect(written).toEqual([
      [
        { name: 'a', value: 4 },
        { name: 'b', value: 2 },
      ],
    ]);
    await counters.push({ name: 'c', value: -1 });
    await drain(counters);
    expect(failures).toEqual(['negative: c', 'dead: c']);
  });

  it('forFeatureAsync takes the record type from the factory', async () => {
    const context = await boot(
      BufIOModule.forFeatureAsync<Counter>({
        name: 'counters',
        useFactory: () => ({
          coalesce: { key: (c) => c.name },
          worker: async (rows) => rows.map((r) => r.value * 2),
        }),
      }),
    );
    const counters = context.get(BufIOService).get<Counter, number>('counters');
    await expect(counters.pushAndWait({ name: 'x', value: 21 })).resolves.toBe(42);
  });
});

@Injectable()
class Throughput {
  constructor(readonly bufio: BufIOService) {}
}

@Module({
  imports: [
    BufIOModule.forFeature<number>({
      name: 'numbers',
      worker: async (rows) => rows.map((n) => (n < 0 ? new Error(`negative ${n}`) : n)),
      retry: { maxAttempts: 1 },
    }),
  ],
  providers: [Throughput],
})
class NumbersModule {}

describe('BufIOService.observe', () => {
  it("emits a buffer's events while subscribed, then completes after its drain", async () => {
    const context = await boot(NumbersModule);
    const bufio = context.get(Throughput).bufio;
    const numbers = bufio.get<number>('numbers');

    const flushed = firstValueFrom(
      bufio.observe<'flushed', number>('numbers', 'flushed').pipe(bufferCount(2)),
    );
    const deadLettered = firstValueFrom(
      bufio.observe<'deadLettered', number>('numbers', 'deadLettered').pipe(toArray()),
    );
    const drained = firstValueFrom(bufio.observe('numbers', 'drained'));

    await numbers.push([1, 2]);
    await drain(numbers);
    await numbers.push([3, -4]);
    await drain(numbers);
    const batches = (await flushed).map((e: BufferEventPayload<'flushed', number>) => e.records);
    expect(batches).toEqual([[1, 2], [3]]);

    await apps.close(context);
    const dead = await deadLettered; // toArray resolves only because the stream completed
    expect(dead.map((e) => [e.records, e.error.message])).toEqual([[[-4], 'negative -4']]);
    expect(await drained).toMatchObject({ timedOut: false, remaining: 0 });
  });

  it('stops listening when unsubscribed', async () => {
    const context = await boot(NumbersModule);
    const bufio = context.get(BufIOService);
    const seen: number[] = [];
    const subscription = bufio
      .observe<'flushed', number>('numbers', 'flushed')
      .subscribe((e) => seen.push(...e.records));
    const numbers = bufio.get<number>('numbers');
    await numbers.push(1);
    await drain(numbers);
    subscription.unsubscribe();
    await numbers.push(2);
    await drain(numbers);
    expect(seen).toEqual([1]);
  });

  it('refuses an unknown buffer at once, with a typed error', async () => {
    const context = await boot(NumbersModule);
    const bufio = context.get(BufIOService);
    expect(() => bufio.observe('nope', 'flushed')).toThrow(UnknownBufferError);
    try {
      bufio.observe('nope', 'flushed');
    } catch (error) {
      expect(error).toBeInstanceOf(BufIOError);
      expect((error as BufIOError).code).toBe('BUFIO_UNKNOWN_BUFFER');
    }
  });
});
