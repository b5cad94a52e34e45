import { afterEach, describe, expect, it } from '@jest/globals';
import { Inject, Injectable, Module, Scope } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { BufIOError, InvalidOptionsError, MemoryStorage } from '../../lib/index.js';
import {
  BufferWorker,
  type BufferEventName,
  type BufferWorkerHandler,
  BufIOModule,
  BufIOService,
  DuplicateBufferError,
  DuplicateWorkerError,
  InvalidWorkerError,
  MissingWorkerError,
  OnBufferEvent,
  UnknownBufferError,
} from '../../lib/nest/index.js';
import { useNestApps } from '../support/nest-apps.js';

const apps = useNestApps();

@BufferWorker('events')
class EventsWorker implements BufferWorkerHandler<unknown> {
  work(): void {}
}

// Providers each wired wrong in one way, for the cases below.
@BufferWorker('events')
class OtherEventsWorker {
  work(): void {}
}
@BufferWorker('evnets')
class TypoWorker {
  work(): void {}
}
@Injectable()
class MetricsListener {
  @OnBufferEvent('metrics', 'flushed')
  onFlushed(): void {}
}
@BufferWorker('events')
class Lazy {
  process(): void {}
}
@Injectable({ scope: Scope.REQUEST })
@BufferWorker('events')
class PerRequestWorker {
  work(): void {}
}
@Injectable({ scope: Scope.REQUEST })
class RequestContext {}
@BufferWorker('events')
class ContextualWorker {
  constructor(@Inject(RequestContext) readonly context: RequestContext) {}
  work(): void {}
}
@Injectable({ scope: Scope.TRANSIENT })
@BufferWorker('events')
class TransientWorker {
  work(): void {}
}
@Module({ imports: [BufIOModule.forFeature({ name: 'events' })] })
class OneEventsModule {}
@Module({ imports: [BufIOModule.forFeature({ name: 'events', batchSize: 5 })] })
class OtherEventsModule {}

const features = (...names: string[]) => BufIOModule.forFeature(...names.map((name) => ({ name })));

describe('boot errors', () => {
  it.each([
    {
      refuses: 'a buffer without a worker',
      app: { imports: [features('orphan')] },
      error: MissingWorkerError,
      fields: { code: 'BUFIO_NO_WORKER', buffer: 'orphan' },
      message: `buffer "orphan" has no worker: decorate a provider with @BufferWorker('orphan') and list it in a module's providers, or pass "worker" to BufIOModule.forFeature()`,
    },
    {
      refuses: 'two workers for one buffer, naming both',
      app: { imports: [features('events')], providers: [EventsWorker, OtherEventsWorker] },
      error: DuplicateWorkerError,
      fields: { code: 'BUFIO_DUPLICATE_WORKER', buffer: 'events' },
      message:
        'buffer "events" has two workers, EventsWorker (in RootTestModule) and OtherEventsWorker (in RootTestModule): a buffer has exactly one worker',
    },
    {
      refuses: 'a @BufferWorker next to a "worker" option',
      app: {
        imports: [BufIOModule.forFeature({ name: 'events', worker: () => undefined })],
        providers: [EventsWorker],
      },
      error: DuplicateWorkerError,
      fields: { code: 'BUFIO_DUPLICATE_WORKER', buffer: 'events' },
      message: expect.stringContaining('the "worker" option of buffer "events" and EventsWorker'),
    },
    {
      refuses: 'a worker for a buffer no forFeature registered',
      app: { imports: [features('events')], providers: [EventsWorker, TypoWorker] },
      error: UnknownBufferError,
      fields: { code: 'BUFIO_UNKNOWN_BUFFER', buffer: 'evnets' },
      message: `@BufferWorker('evnets') on TypoWorker (in RootTestModule) names buffer "evnets", which is not registered (registered: "events"); register it with BufIOModule.forFeature({ name: 'evnets' })`,
    },
    {
      refuses: 'a worker when no buffer is registered at all',
      app: { imports: [BufIOModule.forRoot()], providers: [EventsWorker] },
      error: UnknownBufferError,
      fields: { code: 'BUFIO_UNKNOWN_BUFFER', buffer: 'events' },
      message: expect.stringContaining('(registered: none)'),
    },
    {
      refuses: 'an @OnBufferEvent for an unknown buffer',
      app: { imports: [features('events')], providers: [EventsWorker, MetricsListener] },
      error: UnknownBufferError,
      fields: { code: 'BUFIO_UNKNOWN_BUFFER', buffer: 'metrics' },
      message: expect.stringMatching(
        /^@OnBufferEvent\('metrics', 'flushed'\) on MetricsListener \(in RootTestModule\)\.onFlushed names buffer "metrics", which is not registered/,
      ),
    },
    {
      refuses: 'a decorated class without a work method',
      app: { imports: [features('events')], providers: [Lazy] },
      error: InvalidWorkerError,
      fields: { code: 'BUFIO_INVALID_WORKER', buffer: 'events' },
      message: `@BufferWorker('events') on Lazy (in RootTestModule): the class has no work(records) method; implement BufferWorkerHandler`,
    },
    {
      refuses: 'a request-scoped worker, saying why',
      app: { imports: [features('events')], providers: [PerRequestWorker] },
      error: InvalidWorkerError,
      fields: { code: 'BUFIO_INVALID_WORKER', buffer: 'events' },
      message: `@BufferWorker('events') on PerRequestWorker (in RootTestModule): the provider is request-scoped (by its own scope or through a dependency), but a buffer calls its worker in the background, outside any request, so there is no request to build it for: a worker must be a singleton (the default scope) and depend on singletons only`,
    },
    {
      refuses: 'a worker that is request-scoped through a dependency',
      app: { imports: [features('events')], providers: [RequestContext, ContextualWorker] },
      error: InvalidWorkerError,
      fields: { code: 'BUFIO_INVALID_WORKER', buffer: 'events' },
      message: expect.stringContaining(
        'ContextualWorker (in RootTestModule): the provider is request-scoped',
      ),
    },
    {
      refuses: 'a transient worker',
      app: { imports: [features('events')], providers: [TransientWorker] },
      error: InvalidWorkerError,
      fields: { code: 'BUFIO_INVALID_WORKER', buffer: 'events' },
      message: expect.stringContaining(
        'TransientWorker (in RootTestModule): the provider is transient-scoped',
      ),
    },
    {
      refuses: 'a buffer name registered in two modules',
      app: { imports: [OneEventsModule, OtherEventsModule], providers: [EventsWorker] },
      error: DuplicateBufferError,
      fields: { code: 'BUFIO_DUPLICATE_BUFFER', buffer: 'events' },
      message:
        'buffer "events" is registered twice: BufIOModule.forFeature() was given this name in two places; register a buffer once and import that module (or use BufIOService.get(name)) wherever it is needed',
    },
    {
      refuses: 'a buffer name registered by forFeature and forFeatureAsync',
      app: {
        imports: [
          features('events'),
          BufIOModule.forFeatureAsync({ name: 'events', useFactory: () => ({}) }),
        ],
        providers: [EventsWorker],
      },
      error: DuplicateBufferError,
      fields: { code: 'BUFIO_DUPLICATE_BUFFER', buffer: 'events' },
      message: expect.stringMatching(/^buffer "events" is registered twice/),
    },
  ])('refuses $refuses', async ({ app, error: errorClass, fields, message }) => {
    const error = await apps.bootError(app);
    expect(error).toBeInstanceOf(errorClass);
    expect(error).toMatchObject(fields);
    expect(error.message).toEqual(message);
  });

  it('refuses a name given twice in one forFeature call, at the call', () => {
    expect(() => BufIOModule.forFeature({ name: 'a' }, { name: 'a' })).toThrow(
      expect.objectContaining({
        code: 'BUFIO_DUPLICATE_BUFFER',
        message:
          'buffer "a" is registered twice: it appears twice in one BufIOModule.forFeature() call',
      }),
    );
    expect(() => BufIOModule.forFeature({ name: '' })).toThrow(
      'BufIOModule.forFeature(): invalid option "name": got "", expected a non-empty string',
    );
    expect(() => BufIOModule.forFeature()).toThrow(InvalidOptionsError);
  });
});

describe('invalid options at boot', () => {
  it.each([
    {
      refuses: 'a bad option of a buffer, naming the buffer, the option and the value',
      app: {
        imports: [BufIOModule.forFeature({ name: 'events', batchSize: 0 })],
        providers: [EventsWorker],
      },
      fields: { option: 'batchSize', value: 0 },
      message: 'buffer "events": invalid option "batchSize": got 0, expected an integer >= 1',
    },
    {
      refuses: 'an unknown option',
      app: {
        imports: [BufIOModule.forFeature({ name: 'events', batchsize: 5 } as never)],
        providers: [EventsWorker],
      },
      fields: { option: 'batchsize', value: 5 },
      message: 'buffer "events": invalid option "batchsize": got 5, expected no such option',
    },
    {
      refuses: 'a bad default, reported as the defaults`, not a buffer`s',
      app: {
        imports: [BufIOModule.forRoot({ flushInterval: -1 }), features('events')],
        providers: [EventsWorker],
      },
      fields: { option: 'flushInterval', value: -1 },
      message:
        'BufIOModule.forRoot(): invalid option "flushInterval": got -1, expected a finite number from 0 to 2147483647',
    },
    {
      refuses: 'one storage instance in the defaults, as buffers cannot share it',
      app: { imports: [BufIOModule.forRoot({ storage: new MemoryStorage() as never })] },
      fields: { option: 'storage' },
      message: expect.stringContaining('one storage instance cannot serve several buffers'),
    },
    {
      refuses: 'a buffer-level option in the defaults',
      app: { imports: [BufIOModule.forRoot({ name: 'x' } as never)] },
      fields: { option: 'name', value: 'x' },
      message: expect.stringMatching(/^BufIOModule\.forRoot\(\): invalid option "name": got "x"/),
    },
    {
      refuses: 'a flushCron when @nestjs/schedule is not imported',
      app: {
        imports: [BufIOModule.forFeature({ name: 'events', flushCron: '0 * * * * *' })],
        providers: [EventsWorker],
      },
      fields: { option: 'flushCron', value: '0 * * * * *' },
      message:
        'buffer "events": invalid option "flushCron": got "0 * * * * *", expected to be used with @nestjs/schedule: install it and import ScheduleModule.forRoot() in the application',
    },
    {
      refuses: 'an async factory that returns something other than an object',
      app: {
        imports: [BufIOModule.forFeatureAsync({ name: 'events', useFactory: () => 5 as never })],
        providers: [EventsWorker],
      },
      fields: { option: 'options', value: 5 },
      message: 'BufIOModule.forFeatureAsync(): invalid option "options": got 5, expected an object',
    },
  ])('refuses $refuses', async ({ app, fields, message }) => {
    const error = await apps.bootError(app);
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error).toMatchObject({ code: 'BUFIO_INVALID_OPTIONS', ...fields });
    expect(error.message).toEqual(message);
  });

  describe('from ConfigService (environment variables)', () => {
    const saved = { ...process.env };
    afterEach(() => {
      process.env = { ...saved };
    });

    const fromEnv = () =>
      BufIOModule.forRootAsync({
        imports: [ConfigModule.forRoot({ ignoreEnvFile: true })],
        inject: [ConfigService],
        useFactory: (config: ConfigService) => ({
          batchSize: config.get<number>('BUFIO_BATCH_SIZE', 100),
          flushInterval: config.get<number>('BUFIO_FLUSH_INTERVAL', 5000),
        }),
      });

    it('BUFIO_BATCH_SIZE=abc names the option and the value', async () => {
      process.env.BUFIO_BATCH_SIZE = 'abc';
      const error = await apps.bootError({
        imports: [fromEnv(), BufIOModule.forFeature({ name: 'events' })],
        providers: [EventsWorker],
      });
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error).toMatchObject({ option: 'batchSize', value: 'abc' });
      expect(error.message).toBe(
        'BufIOModule.forRoot(): invalid option "batchSize": got "abc", expected a number, or a string holding one ("50")',
      );
    });

    it('a numeric string out of range is refused as the number it holds', async () => {
      process.env.BUFIO_FLUSH_INTERVAL = '-5';
      const error = await apps.bootError({
        imports: [fromEnv(), BufIOModule.forFeature({ name: 'events' })],
        providers: [EventsWorker],
      });
      expect(error.message).toBe(
        'BufIOModule.forRoot(): invalid option "flushInterval": got -5, expected a finite number from 0 to 2147483647',
      );
    });

    it('a buffer`s own option from the environment names the buffer', async () => {
      process.env.EVENTS_RETRIES = 'many';
      const error = await apps.bootError({
        imports: [
          BufIOModule.forFeatureAsync({
            name: 'events',
            imports: [ConfigModule.forRoot({ ignoreEnvFile: true })],
            inject: [ConfigService],
            useFactory: (config: ConfigService) => ({
              retry: { maxAttempts: config.get<number>('EVENTS_RETRIES') },
            }),
          }),
        ],
        providers: [EventsWorker],
      });
      expect(error.message).toBe(
        'buffer "events": invalid option "retry.maxAttempts": got "many", expected a number, or a string holding one ("50")',
      );
    });
  });

  it('refuses forRootAsync without a way to build the options, at the call', () => {
    expect(() => BufIOModule.forRootAsync({})).toThrow(
      'BufIOModule.forRootAsync(): invalid option "useFactory": got undefined, expected one of useFactory, useClass or useExisting',
    );
  });
});

describe('decorator and lookup errors', () => {
  it('refuses an empty buffer name or an unknown event at decoration', () => {
    expect(() => BufferWorker('')).toThrow(
      '@BufferWorker(): invalid option "name": got "", expected a non-empty string',
    );
    expect(() => OnBufferEvent('events', 'done' as BufferEventName)).toThrow(
      `@OnBufferEvent(): invalid option "event": got "done", expected one of 'flushed', 'failed', 'retrying', 'dropped', 'refused', 'deadLettered', 'drained', 'error'`,
    );
  });

  it('BufIOService.get() of an unknown name throws UnknownBufferError', async () => {
    const moduleRef = await apps.compile({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [EventsWorker],
    });
    const service = moduleRef.get(BufIOService);
    expect(() => service.get('nope')).toThrow(UnknownBufferError);
    expect(() => service.get('nope')).toThrow(
      `BufIOService.get() names buffer "nope", which is not registered (registered: "events")`,
    );
    await expect(service.push('nope', 1)).rejects.toBeInstanceOf(BufIOError);
    await expect(service.push('nope', 1)).rejects.toMatchObject({
      code: 'BUFIO_UNKNOWN_BUFFER',
      message: expect.stringMatching(/^BufIOService\.push\(\) names buffer "nope"/),
    });
  });
});
