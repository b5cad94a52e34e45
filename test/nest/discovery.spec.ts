import { describe, expect, it } from '@jest/globals';
import {
  Controller,
  type INestApplication,
  Injectable,
  type ModuleMetadata,
  Scope,
} from '@nestjs/common';
import type { BufIO } from '../../lib/index.js';
import {
  BufferWorker,
  type BufferEventPayload,
  type BufferWorkerHandler,
  BufIOModule,
  BufIOService,
  OnBufferEvent,
} from '../../lib/nest/index.js';
import { CapturingLogger, useNestApps } from '../support/nest-apps.js';

const apps = useNestApps();

async function boot(
  metadata: ModuleMetadata,
  logger = new CapturingLogger(),
): Promise<{ nest: INestApplication; logger: CapturingLogger }> {
  return { nest: await apps.boot(metadata, logger), logger };
}

/** A worker class that is never listed as a class provider, only built by hand. */
@BufferWorker('events')
class HandMadeWorker implements BufferWorkerHandler<number> {
  readonly seen: number[] = [];
  constructor(readonly label: string) {}
  work(records: number[]): void {
    this.seen.push(...records);
  }
}

describe('worker discovery', () => {
  it('finds a worker provided with useValue', async () => {
    const worker = new HandMadeWorker('value');
    const { nest } = await boot({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [{ provide: 'EVENTS_WORKER', useValue: worker }],
    });
    const events = nest.get(BufIOService).get<number>('events');
    await events.push([1, 2]);
    await events.flush();
    expect(worker.seen).toEqual([1, 2]);
  });

  it('finds a worker provided with useFactory, built from injected providers', async () => {
    const { nest } = await boot({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [
        { provide: 'LABEL', useValue: 'from-factory' },
        {
          provide: 'EVENTS_WORKER',
          useFactory: (label: string) => new HandMadeWorker(label),
          inject: ['LABEL'],
        },
      ],
    });
    const worker = nest.get<HandMadeWorker>('EVENTS_WORKER');
    expect(worker.label).toBe('from-factory');
    const events = nest.get(BufIOService).get<number>('events');
    await events.push([3]);
    await events.flush();
    expect(worker.seen).toEqual([3]);
  });

  it('explores an aliased (useExisting) or twice-provided worker once, not as two workers', async () => {
    const worker = new HandMadeWorker('shared');
    const { nest } = await boot({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [
        { provide: 'A', useValue: worker },
        { provide: 'B', useExisting: 'A' },
        { provide: 'C', useValue: worker },
      ],
    });
    const events = nest.get(BufIOService).get<number>('events');
    await events.push([4]);
    await events.flush();
    expect(worker.seen).toEqual([4]);
  });

  it('skips providers it cannot describe: null-prototype objects, primitives, functions', async () => {
    const worker = new HandMadeWorker('plain');
    const { nest } = await boot({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [
        { provide: 'NULL_PROTO', useValue: Object.create(null) as object },
        { provide: 'NUMBER', useValue: 42 },
        { provide: 'NULL', useValue: null },
        { provide: 'FUNCTION', useValue: () => 1 },
        { provide: 'W', useValue: worker },
      ],
    });
    const events = nest.get(BufIOService).get<number>('events');
    await events.push([5]);
    await events.flush();
    expect(worker.seen).toEqual([5]);
  });

  it('accepts a worker given as the "worker" option instead of a @BufferWorker class', async () => {
    const seen: string[] = [];
    const { nest } = await boot({
      imports: [
        BufIOModule.forFeature({
          name: 'audit',
          worker: (records: unknown[]) => {
            seen.push(...(records as string[]));
          },
        }),
      ],
    });
    await nest.get(BufIOService).push('audit', ['a', 'b']);
    await nest.get(BufIOService).flushAll();
    expect(seen).toEqual(['a', 'b']);
  });
});

describe('@OnBufferEvent', () => {
  type Payloads = {
    [K in 'flushed' | 'failed' | 'retrying' | 'deadLettered' | 'drained']: unknown[];
  };

  @BufferWorker('jobs')
  class FlakyWorker implements BufferWorkerHandler<string> {
    readonly seen: string[] = [];
    work(records: string[]): (string | Error)[] {
      // Records named "bad" fail every attempt; the others succeed.
      return records.map((r) => (r === 'bad' ? new Error(`cannot do ${r}`) : `done ${r}`));
    }
    @OnBufferEvent('jobs', 'flushed')
    onFlushed({ records }: BufferEventPayload<'flushed', string>): void {
      this.seen.push(...records);
    }
  }

  /** Not a worker: any provider may listen, and one method may listen to several events. */
  @Injectable()
  class JobsMonitor {
    readonly payloads: Payloads = {
      flushed: [],
      failed: [],
      retrying: [],
      deadLettered: [],
      drained: [],
    };
    @OnBufferEvent('jobs', 'failed')
    @OnBufferEvent('jobs', 'retrying')
    onTrouble(payload: BufferEventPayload<'failed' | 'retrying', string>): void {
      (
        this.payloads[
          'attempt' in payload && 'error' in payload ? 'failed' : 'retrying'
        ] as unknown[]
      ).push(payload);
    }
    @OnBufferEvent('jobs', 'deadLettered')
    async onDeadLettered(payload: BufferEventPayload<'deadLettered', string>): Promise<void> {
      this.payloads.deadLettered.push(payload);
    }
    @OnBufferEvent('jobs', 'drained')
    onDrained(summary: BufferEventPayload<'drained'>): void {
      this.payloads.drained.push(summary);
    }
    @OnBufferEvent('jobs', 'flushed')
    broken(): void {
      throw new Error('monitor is broken');
    }
  }

  @Controller()
  class JobsController {
    readonly flushed: number[] = [];
    @OnBufferEvent('jobs', 'flushed')
    async onFlushed({ records }: BufferEventPayload<'flushed', string>): Promise<void> {
      this.flushed.push(records.length);
      throw new Error('controller handler rejected');
    }
  }

  it('delivers each event`s payload to every subscribed method, on workers, providers and controllers', async () => {
    const { nest, logger } = await boot({
      imports: [
        BufIOModule.forFeature({
          name: 'jobs',
          retry: { maxAttempts: 2, initialDelay: 1, maxDelay: 1 },
        }),
      ],
      providers: [FlakyWorker, JobsMonitor],
      controllers: [JobsController],
    });
    const jobs = nest.get(BufIOService).get<string>('jobs');
    await jobs.push(['a', 'bad', 'b']);
    await jobs.flush();
    await apps.close(nest);
    const monitor = nest.get(JobsMonitor);
    expect(monitor.payloads.failed).toHaveLength(2); // two attempts of "bad"
    expect(monitor.payloads.failed[0]).toMatchObject({ records: ['bad'], attempt: 1 });
    expect(monitor.payloads.retrying).toEqual([
      expect.objectContaining({ records: ['bad'], attempt: 2 }),
    ]);
    expect(monitor.payloads.deadLettered).toEqual([
      { records: ['bad'], error: expect.objectContaining({ message: 'cannot do bad' }) },
    ]);
    expect(monitor.payloads.drained).toEqual([expect.objectContaining({ timedOut: false })]);

    // A throwing (or rejecting) handler is logged with its name and does not disturb the others.
    const errors = logger.bufio('error').map((l) => l.message);
    expect(errors).toContainEqual(
      expect.stringContaining(
        "@OnBufferEvent('jobs', 'flushed') on JobsMonitor (in RootTestModule).broken failed: monitor is broken",
      ),
    );
    expect(errors).toContainEqual(
      expect.stringContaining(
        'JobsController (in RootTestModule).onFlushed failed: controller handler rejected',
      ),
    );
    expect(errors).toContainEqual(
      expect.stringContaining('1 record(s) dead-lettered: cannot do bad'),
    );
    expect(logger.bufio('warn').map((l) => l.message)).toEqual([
      'buffer "jobs": a batch of 1 record(s) failed on attempt 1: cannot do bad',
      'buffer "jobs": a batch of 1 record(s) failed on attempt 2: cannot do bad',
    ]);
  });

  it('keeps the worker`s own handler and the controller`s in step with the batches', async () => {
    const { nest } = await boot({
      imports: [BufIOModule.forFeature({ name: 'jobs', batchSize: 2 })],
      providers: [FlakyWorker, JobsMonitor],
      controllers: [JobsController],
    });
    const jobs: BufIO<string> = nest.get(BufIOService).get('jobs');
    await jobs.push(['a', 'b', 'c']);
    await jobs.flush();
    expect(nest.get(FlakyWorker).seen).toEqual(['a', 'b', 'c']);
    expect(nest.get(JobsController).flushed).toEqual([2, 1]);
  });

  it('ignores, with a warning, @OnBufferEvent on a request-scoped provider', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @OnBufferEvent('jobs', 'flushed')
      onFlushed(): void {}
    }
    const { logger } = await boot({
      imports: [BufIOModule.forFeature({ name: 'jobs' })],
      providers: [FlakyWorker, PerRequest],
    });
    expect(logger.bufio('warn').map((l) => l.message)).toEqual([
      '@OnBufferEvent on PerRequest (in RootTestModule).onFlushed is ignored: the provider is not a singleton (request- or transient-scoped), and buffer events happen outside any request',
    ]);
  });
});
