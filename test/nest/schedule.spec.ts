import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import type { ModuleMetadata } from '@nestjs/common';
import { InvalidOptionsError } from '../../lib/index.js';
import {
  BufferWorker,
  type BufferWorkerHandler,
  BufIOModule,
  BufIOService,
} from '../../lib/nest/index.js';
import { useNestApps } from '../support/nest-apps.js';

@BufferWorker('events')
class EventsWorker implements BufferWorkerHandler<number> {
  readonly batches: number[][] = [];
  work(records: number[]): void {
    this.batches.push([...records]);
  }
}

@BufferWorker('metrics')
class MetricsWorker implements BufferWorkerHandler<number> {
  readonly batches: number[][] = [];
  private failures = 1;
  work(records: number[]): void {
    if (this.failures-- > 0) throw new Error('metrics store is warming up');
    this.batches.push([...records]);
  }
}

/** Fake timers replace the timers, not the promise machinery Nest and the engine await on. */
const FAKE: Parameters<typeof jest.useFakeTimers>[0] = {
  doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'],
};

const apps = useNestApps();
const compileApp = (imports: ModuleMetadata['imports'], providers: ModuleMetadata['providers']) =>
  apps.compile({ imports, providers });
// After the apps close (hooks run in the order they are declared).
afterEach(() => {
  jest.useRealTimers();
});

describe('with @nestjs/schedule', () => {
  it('lists an armed flush timer in SchedulerRegistry as the timeout bufio:<name>', async () => {
    const moduleRef = await compileApp(
      [
        ScheduleModule.forRoot(),
        BufIOModule.forFeature({ name: 'events', batchSize: 100, flushInterval: 1000 }),
      ],
      [EventsWorker],
    );
    jest.useFakeTimers(FAKE);
    const app = await apps.start(moduleRef);
    const registry = app.get(SchedulerRegistry);
    const events = app.get(BufIOService).get<number>('events');
    expect(registry.getTimeouts()).toEqual([]); // nothing buffered, no timer

    await events.push([1, 2, 3]);
    expect(registry.getTimeouts()).toEqual(['bufio:events']);
    expect(jest.getTimerCount()).toBe(1);

    await jest.advanceTimersByTimeAsync(999);
    expect(app.get(EventsWorker).batches).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(app.get(EventsWorker).batches).toEqual([[1, 2, 3]]);
    expect(registry.getTimeouts()).toEqual([]); // fired, and gone from the registry

    // Armed again at close: ScheduleModule clears every registered timeout at shutdown, and the
    // buffer still drains what it holds.
    await events.push([4]);
    expect(registry.getTimeouts()).toEqual(['bufio:events']);
    const worker = app.get(EventsWorker);
    await apps.close(app);
    expect(worker.batches).toEqual([[1, 2, 3], [4]]);
    expect(registry.getTimeouts()).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('flushes on flushCron through a cron job bufio:<name>, removed at close', async () => {
    const moduleRef = await compileApp(
      [
        ScheduleModule.forRoot(),
        BufIOModule.forFeature({
          name: 'events',
          flushInterval: 3_600_000,
          flushCron: '*/10 * * * * *', // every 10 s
        }),
      ],
      [EventsWorker],
    );
    jest.useFakeTimers(FAKE);
    jest.setSystemTime(new Date('2026-11-02T10:00:00.000Z'));
    const app = await apps.start(moduleRef);
    const registry = app.get(SchedulerRegistry);
    expect([...registry.getCronJobs().keys()]).toEqual(['bufio:events']);

    const events = app.get(BufIOService).get<number>('events');
    await events.push([1, 2]);
    await jest.advanceTimersByTimeAsync(9_000);
    expect(app.get(EventsWorker).batches).toEqual([]);
    await jest.advanceTimersByTimeAsync(1_000); // 10:00:10, the next tick
    expect(app.get(EventsWorker).batches).toEqual([[1, 2]]);

    await apps.close(app);
    expect(registry.getCronJobs().size).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('refuses an invalid cron expression at boot', async () => {
    const error = await apps.bootError({
      imports: [
        ScheduleModule.forRoot(),
        BufIOModule.forFeature({ name: 'events', flushCron: 'every minute' }),
      ],
      providers: [EventsWorker],
    });
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toMatch(
      /^buffer "events": invalid option "flushCron": got "every minute", expected a valid cron expression \(.+\)$/,
    );
  });
});

describe('timers', () => {
  it('leaves no timer behind after app.close(), retries and buffered records included', async () => {
    const moduleRef = await compileApp(
      [
        BufIOModule.forRoot({ flushInterval: 500, retry: { initialDelay: 200, maxDelay: 200 } }),
        BufIOModule.forFeature({ name: 'events' }, { name: 'metrics' }),
      ],
      [EventsWorker, MetricsWorker],
    );
    jest.useFakeTimers(FAKE);
    const app = await apps.start(moduleRef);
    const service = app.get(BufIOService);
    await service.push('events', [1]);
    await service.push('metrics', [10, 11]);
    await jest.advanceTimersByTimeAsync(500); // metrics fails once, a retry is scheduled
    expect(service.stats().metrics).toMatchObject({ failed: 2, retried: 2, processed: 0 });
    expect(jest.getTimerCount()).toBeGreaterThan(0);
    await service.push('events', [2]);

    const events = app.get(EventsWorker);
    const metrics = app.get(MetricsWorker);
    const closing = apps.close(app);
    await jest.advanceTimersByTimeAsync(200); // the drain waits for the retry that falls due
    await closing;
    expect(events.batches.flat()).toEqual([1, 2]);
    expect(metrics.batches).toEqual([[10, 11]]);
    expect(jest.getTimerCount()).toBe(0);
  });
});
