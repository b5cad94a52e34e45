import { describe, expect, it } from '@jest/globals';
import { Injectable, Module, type OnModuleInit } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { BufIO, BufIOClosedError, MemoryStorage } from '../../lib/index.js';
import {
  BufferWorker,
  type BufferWorkerHandler,
  BufIOModule,
  type BufIOModuleOptions,
  type BufferOptions,
  type BufferOptionsFactory,
  type BufIOOptionsFactory,
  BufIOService,
  getBufferToken,
  InjectBuffer,
  OnBufferEvent,
} from '../../lib/nest/index.js';
import { CapturingLogger, useNestApps } from '../support/nest-apps.js';

interface Ev {
  id: number;
}

/** Where the workers below put what they are given, so tests read it through DI. */
@Injectable()
class Sink {
  readonly batches: Record<string, unknown[][]> = {};
  add(buffer: string, records: unknown[]): void {
    (this.batches[buffer] ??= []).push([...records]);
  }
  of(buffer: string): unknown[][] {
    return this.batches[buffer] ?? [];
  }
}

@BufferWorker('events')
class EventsWorker implements BufferWorkerHandler<Ev> {
  constructor(private readonly sink: Sink) {}
  async work(records: Ev[]): Promise<void> {
    this.sink.add('events', records);
  }
}

@BufferWorker('metrics')
class MetricsWorker implements BufferWorkerHandler<number> {
  constructor(private readonly sink: Sink) {}
  work(records: number[]): void {
    this.sink.add('metrics', records);
  }
}

@Injectable()
class Producer {
  constructor(
    @InjectBuffer('events') readonly events: BufIO<Ev>,
    @InjectBuffer('metrics') readonly metrics: BufIO<number>,
    readonly bufio: BufIOService,
  ) {}
}

const ids = (n: number, from = 0): Ev[] => Array.from({ length: n }, (_, i) => ({ id: from + i }));

const apps = useNestApps();

describe('BufIOModule.forRoot / forFeature', () => {
  it('registers several named buffers, injectable by token, @InjectBuffer and BufIOService', async () => {
    const app = await apps.boot({
      imports: [
        BufIOModule.forRoot({ batchSize: 3, flushInterval: 60_000 }),
        BufIOModule.forFeature({ name: 'events' }, { name: 'metrics', batchSize: 2 }),
      ],
      providers: [Sink, EventsWorker, MetricsWorker, Producer],
    });
    const producer = app.get(Producer);
    const service = app.get(BufIOService);

    expect(producer.events).toBeInstanceOf(BufIO);
    expect(producer.events).toBe(app.get(getBufferToken('events')));
    expect(producer.events).toBe(service.get('events'));
    expect(producer.metrics).toBe(service.get('metrics'));
    expect(producer.metrics).toBe(app.get(getBufferToken('metrics')));
    expect(producer.events.name).toBe('events');
    expect(service.names()).toEqual(['events', 'metrics']);

    for (const ev of ids(3)) await producer.events.push(ev);
    await service.push('metrics', [1, 2]);
    await service.flushAll();

    const sink = app.get(Sink);
    // batchSize 3 from the defaults made one batch of events; metrics overrides it with 2.
    expect(sink.of('events')).toEqual([ids(3)]);
    expect(sink.of('metrics')).toEqual([[1, 2]]);
    const stats = service.stats();
    expect(Object.keys(stats)).toEqual(['events', 'metrics']);
    expect(stats.events).toMatchObject({
      name: 'events',
      state: 'running',
      processed: 3,
      batches: 1,
    });
    expect(stats.metrics).toMatchObject({ processed: 2, batches: 1 });
  });

  it('processes records pushed before bootstrap once the application starts', async () => {
    const moduleRef = await apps.compile({
      imports: [BufIOModule.forFeature({ name: 'events', batchSize: 2, flushInterval: 60_000 })],
      providers: [Sink, EventsWorker],
    });
    const events = moduleRef.get<BufIO<Ev>>(getBufferToken('events'));
    await events.push(ids(5));
    expect(events.state).toBe('created');
    expect(moduleRef.get(Sink).of('events')).toEqual([]);

    const app = await apps.start(moduleRef);
    await events.flush();
    expect(events.state).toBe('running');
    expect(app.get(Sink).of('events').flat()).toEqual(ids(5));
  });

  it('processes records another provider pushed in its onModuleInit, before the buffers started', async () => {
    @Injectable()
    class EarlyProducer implements OnModuleInit {
      stateAtPush = '';
      constructor(@InjectBuffer('events') private readonly events: BufIO<Ev>) {}
      async onModuleInit(): Promise<void> {
        this.stateAtPush = this.events.state;
        await this.events.push(ids(3));
      }
    }
    const app = await apps.boot({
      imports: [BufIOModule.forFeature({ name: 'events', flushInterval: 60_000 })],
      providers: [Sink, EventsWorker, EarlyProducer],
    });
    expect(app.get(EarlyProducer).stateAtPush).toBe('created');
    await app.get(BufIOService).flushAll();
    expect(app.get(Sink).of('events')).toEqual([ids(3)]);
  });

  it('drains every buffer on app.close(), logs one line per buffer, then refuses pushes', async () => {
    const logger = new CapturingLogger();
    const app = await apps.boot(
      {
        imports: [
          BufIOModule.forRoot({ batchSize: 1000, flushInterval: 3_600_000 }),
          BufIOModule.forFeature({ name: 'events' }, { name: 'metrics' }),
        ],
        providers: [Sink, EventsWorker, MetricsWorker, Producer],
      },
      logger,
    );
    const { events, metrics } = app.get(Producer);
    await events.push(ids(50));
    await metrics.push([7, 8, 9]);
    const sink = app.get(Sink);
    expect(sink.of('events')).toEqual([]); // buffered: neither trigger has fired

    await apps.close(app);
    expect(sink.of('events').flat()).toEqual(ids(50));
    expect(sink.of('metrics').flat()).toEqual([7, 8, 9]);
    expect(events.state).toBe('stopped');
    expect(metrics.state).toBe('stopped');
    await expect(events.push({ id: 99 })).rejects.toBeInstanceOf(BufIOClosedError);

    const drained = logger.bufio('log').map((l) => l.message);
    expect(drained).toHaveLength(2);
    expect(drained).toContainEqual(
      expect.stringMatching(/^buffer "events" drained in \d+ ms: 50 processed, 0 dead-lettered/),
    );
    expect(drained).toContainEqual(
      expect.stringMatching(/^buffer "metrics" drained .*3 processed/),
    );
    // The refused push is logged (a fire-and-forget push is never refused silently); nothing else.
    expect(logger.bufio('warn').map((l) => l.message)).toEqual([
      'buffer "events": refused a push of 1 record(s): buffer "events" is stopped and no longer accepts records',
    ]);
    expect(logger.bufio()).toHaveLength(3);
  });

  it('gives each buffer its own storage, from an instance or from the defaults factory', async () => {
    const own = new MemoryStorage<Ev>();
    const made: string[] = [];
    const app = await apps.boot({
      imports: [
        BufIOModule.forRoot({
          storage: (name) => {
            made.push(name);
            return new MemoryStorage();
          },
        }),
        BufIOModule.forFeature({ name: 'events', storage: own }, { name: 'metrics' }),
      ],
      providers: [Sink, EventsWorker, MetricsWorker],
    });
    const service = app.get(BufIOService);
    expect(service.get('events').storage).toBe(own);
    expect(made).toEqual(['metrics']);
    expect(service.get('metrics').storage).toBeInstanceOf(MemoryStorage);
  });

  it('accepts the same forFeature module imported by two modules as one buffer', async () => {
    const EventsBuffer = BufIOModule.forFeature({ name: 'events', flushInterval: 60_000 });
    @Module({ imports: [EventsBuffer], providers: [Sink, EventsWorker], exports: [Sink] })
    class WritingModule {}
    @Injectable()
    class Reader {
      constructor(@InjectBuffer('events') readonly events: BufIO<Ev>) {}
    }
    @Module({ imports: [EventsBuffer], providers: [Reader], exports: [Reader] })
    class ReadingModule {}

    const app = await apps.boot({ imports: [WritingModule, ReadingModule] });
    const reader = app.get(Reader);
    expect(reader.events).toBe(app.get(BufIOService).get('events'));
    await reader.events.push(ids(2));
    await reader.events.flush();
    expect(app.get(Sink).of('events')).toEqual([ids(2)]);
  });

  it('imported forRoot twice still runs one explorer: each batch is processed and reported once', async () => {
    @Injectable()
    class FlushCounter {
      flushed = 0;
      records = 0;
      @OnBufferEvent('events', 'flushed')
      onFlushed({ records }: { records: readonly Ev[] }): void {
        this.flushed++;
        this.records += records.length;
      }
    }
    @Module({
      imports: [
        BufIOModule.forRoot({ batchSize: 5 }),
        BufIOModule.forFeature({ name: 'events', flushInterval: 60_000 }),
      ],
      providers: [Sink, EventsWorker, FlushCounter],
      exports: [Sink, FlushCounter],
    })
    class FeatureModule {}
    const logger = new CapturingLogger();
    const app = await apps.boot(
      {
        imports: [BufIOModule.forRoot({ batchSize: 5 }), FeatureModule],
      },
      logger,
    );
    const events = app.get(BufIOService).get<Ev>('events');
    await events.push(ids(10));
    await events.flush();

    expect(app.get(Sink).of('events')).toEqual([ids(5), ids(5, 5)]);
    expect(app.get(FlushCounter)).toMatchObject({ flushed: 2, records: 10 });
    expect(logger.bufio('warn').map((l) => l.message)).toEqual([
      expect.stringContaining('BufIOModule.forRoot() is imported 2 times'),
    ]);
  });
});

describe('BufIOModule.forRootAsync / forFeatureAsync with ConfigService', () => {
  const config = (values: Record<string, string>) =>
    ConfigModule.forRoot({ ignoreEnvFile: true, load: [() => values] });

  it('reads the defaults and a buffer`s options from ConfigService, numeric strings included', async () => {
    const storage = new MemoryStorage<Ev>();
    const app = await apps.boot({
      imports: [
        BufIOModule.forRootAsync({
          imports: [config({ BUFIO_BATCH_SIZE: '4', BUFIO_FLUSH_INTERVAL: '60000' })],
          inject: [ConfigService],
          useFactory: (cfg: ConfigService) => ({
            batchSize: cfg.get<number>('BUFIO_BATCH_SIZE', 100),
            flushInterval: cfg.get<number>('BUFIO_FLUSH_INTERVAL', 5000),
            retry: { maxAttempts: cfg.get<number>('BUFIO_MAX_ATTEMPTS') }, // unset: the default
          }),
        }),
        BufIOModule.forFeatureAsync({
          name: 'events',
          imports: [config({ EVENTS_MAX_BUFFERED: '40' })],
          inject: [ConfigService],
          useFactory: (cfg: ConfigService) => ({
            storage,
            maxBufferedRecords: cfg.get<number>('EVENTS_MAX_BUFFERED'),
            shutdownTimeout: '2000' as unknown as number,
          }),
        }),
      ],
      providers: [Sink, EventsWorker],
    });
    const events = app.get(BufIOService).get<Ev>('events');
    expect(events.storage).toBe(storage);
    for (const ev of ids(4)) await events.push(ev);
    await events.flush();
    expect(app.get(Sink).of('events')).toEqual([ids(4)]); // batchSize "4" from the environment
  });

  it('takes a buffer`s options from a useClass factory, which is told the buffer`s name', async () => {
    @Injectable()
    class BufferConfig implements BufferOptionsFactory {
      readonly asked: string[] = [];
      createBufferOptions(name: string): BufferOptions {
        this.asked.push(name);
        return { batchSize: 3, flushInterval: 60_000 };
      }
    }
    const app = await apps.boot({
      imports: [BufIOModule.forFeatureAsync({ name: 'events', useClass: BufferConfig })],
      providers: [Sink, EventsWorker],
    });
    const events = app.get(BufIOService).get<Ev>('events');
    for (const ev of ids(3)) await events.push(ev);
    await events.flush();
    expect(app.get(Sink).of('events')).toEqual([ids(3)]);
    expect(app.get(BufferConfig).asked).toEqual(['events']);
  });

  it('takes the defaults from a useClass factory', async () => {
    @Injectable()
    class BufIOConfig implements BufIOOptionsFactory {
      createBufIOOptions(): BufIOModuleOptions {
        return { batchSize: 2, flushInterval: 60_000 };
      }
    }
    const app = await apps.boot({
      imports: [
        BufIOModule.forRootAsync({ useClass: BufIOConfig }),
        BufIOModule.forFeature({ name: 'events' }),
      ],
      providers: [Sink, EventsWorker],
    });
    const events = app.get(BufIOService).get<Ev>('events');
    await events.push(ids(4));
    await events.flush();
    expect(app.get(Sink).of('events')).toEqual([ids(2), ids(2, 2)]);
  });
});
