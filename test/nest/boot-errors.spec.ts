import { afterEach, describe, expect, it } from '@jest/globals';
import { Inject, Injectable, Module, Scope } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Test } from '@nestjs/testing';
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
import { CapturingLogger } from '../support/nest-apps.js';

/** Boots an application that must fail; returns what it failed with, at compile() or init(). */
async function bootError(metadata: Parameters<typeof Test.createTestingModule>[0]): Promise<Error> {
  let failure: unknown;
  try {
    const moduleRef = await Test.createTestingModule(metadata)
      .setLogger(new CapturingLogger())
      .compile();
    const app = moduleRef.createNestApplication();
    try {
      await app.init();
    } catch (error) {
      failure = error;
    }
    await app.close();
  } catch (error) {
    failure = error;
  }
  if (failure === undefined) throw new Error('the application booted, but it should have failed');
  return failure as Error;
}

@BufferWorker('events')
class EventsWorker implements BufferWorkerHandler<unknown> {
  work(): void {}
}

describe('boot errors', () => {
  it('refuses a buffer without a worker', async () => {
    const error = await bootError({ imports: [BufIOModule.forFeature({ name: 'orphan' })] });
    expect(error).toBeInstanceOf(MissingWorkerError);
    expect(error).toMatchObject({ code: 'BUFIO_NO_WORKER', buffer: 'orphan' });
    expect(error.message).toBe(
      `buffer "orphan" has no worker: decorate a provider with @BufferWorker('orphan') and list it in a module's providers, or pass "worker" to BufIOModule.forFeature()`,
    );
  });

  it('refuses two workers for one buffer, naming both', async () => {
    @BufferWorker('events')
    class OtherEventsWorker {
      work(): void {}
    }
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [EventsWorker, OtherEventsWorker],
    });
    expect(error).toBeInstanceOf(DuplicateWorkerError);
    expect(error).toMatchObject({ code: 'BUFIO_DUPLICATE_WORKER', buffer: 'events' });
    expect(error.message).toBe(
      'buffer "events" has two workers, EventsWorker (in RootTestModule) and OtherEventsWorker (in RootTestModule): a buffer has exactly one worker',
    );
  });

  it('refuses a @BufferWorker next to a "worker" option', async () => {
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events', worker: () => undefined })],
      providers: [EventsWorker],
    });
    expect(error).toBeInstanceOf(DuplicateWorkerError);
    expect(error.message).toContain('the "worker" option of buffer "events" and EventsWorker');
  });

  it('refuses a worker for a buffer no forFeature registered', async () => {
    @BufferWorker('evnets')
    class TypoWorker {
      work(): void {}
    }
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [EventsWorker, TypoWorker],
    });
    expect(error).toBeInstanceOf(UnknownBufferError);
    expect(error).toMatchObject({ code: 'BUFIO_UNKNOWN_BUFFER', buffer: 'evnets' });
    expect(error.message).toBe(
      `@BufferWorker('evnets') on TypoWorker (in RootTestModule) names buffer "evnets", which is not registered (registered: "events"); register it with BufIOModule.forFeature({ name: 'evnets' })`,
    );
  });

  it('refuses a worker when no buffer is registered at all', async () => {
    const error = await bootError({ imports: [BufIOModule.forRoot()], providers: [EventsWorker] });
    expect(error).toBeInstanceOf(UnknownBufferError);
    expect(error.message).toContain('(registered: none)');
  });

  it('refuses an @OnBufferEvent for an unknown buffer', async () => {
    @Injectable()
    class Listener {
      @OnBufferEvent('metrics', 'flushed')
      onFlushed(): void {}
    }
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [EventsWorker, Listener],
    });
    expect(error).toBeInstanceOf(UnknownBufferError);
    expect(error.message).toMatch(
      /^@OnBufferEvent\('metrics', 'flushed'\) on Listener \(in RootTestModule\)\.onFlushed names buffer "metrics", which is not registered/,
    );
  });

  it('refuses a decorated class without a work method', async () => {
    @BufferWorker('events')
    class Lazy {
      process(): void {}
    }
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [Lazy],
    });
    expect(error).toBeInstanceOf(InvalidWorkerError);
    expect(error).toMatchObject({ code: 'BUFIO_INVALID_WORKER', buffer: 'events' });
    expect(error.message).toBe(
      `@BufferWorker('events') on Lazy (in RootTestModule): the class has no work(records) method; implement BufferWorkerHandler`,
    );
  });

  it('refuses a request-scoped worker, saying why', async () => {
    @Injectable({ scope: Scope.REQUEST })
    @BufferWorker('events')
    class PerRequestWorker {
      work(): void {}
    }
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [PerRequestWorker],
    });
    expect(error).toBeInstanceOf(InvalidWorkerError);
    expect(error).toMatchObject({ code: 'BUFIO_INVALID_WORKER' });
    expect(error.message).toBe(
      `@BufferWorker('events') on PerRequestWorker (in RootTestModule): the provider is request-scoped (by its own scope or through a dependency), but a buffer calls its worker in the background, outside any request, so there is no request to build it for: a worker must be a singleton (the default scope) and depend on singletons only`,
    );
  });

  it('refuses a worker that is request-scoped through a dependency', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class RequestContext {}
    @BufferWorker('events')
    class ContextualWorker {
      constructor(@Inject(RequestContext) readonly context: RequestContext) {}
      work(): void {}
    }
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [RequestContext, ContextualWorker],
    });
    expect(error).toBeInstanceOf(InvalidWorkerError);
    expect(error.message).toContain(
      'ContextualWorker (in RootTestModule): the provider is request-scoped',
    );
  });

  it('refuses a transient worker', async () => {
    @Injectable({ scope: Scope.TRANSIENT })
    @BufferWorker('events')
    class TransientWorker {
      work(): void {}
    }
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [TransientWorker],
    });
    expect(error).toBeInstanceOf(InvalidWorkerError);
    expect(error.message).toContain(
      'TransientWorker (in RootTestModule): the provider is transient-scoped',
    );
  });

  it('refuses a buffer name registered in two modules', async () => {
    @Module({ imports: [BufIOModule.forFeature({ name: 'events' })] })
    class OneModule {}
    @Module({ imports: [BufIOModule.forFeature({ name: 'events', batchSize: 5 })] })
    class OtherModule {}
    const error = await bootError({ imports: [OneModule, OtherModule], providers: [EventsWorker] });
    expect(error).toBeInstanceOf(DuplicateBufferError);
    expect(error).toMatchObject({ code: 'BUFIO_DUPLICATE_BUFFER', buffer: 'events' });
    expect(error.message).toBe(
      'buffer "events" is registered twice: BufIOModule.forFeature() was given this name in two places; register a buffer once and import that module (or use BufIOService.get(name)) wherever it is needed',
    );
  });

  it('refuses a buffer name registered by forFeature and forFeatureAsync', async () => {
    const error = await bootError({
      imports: [
        BufIOModule.forFeature({ name: 'events' }),
        BufIOModule.forFeatureAsync({ name: 'events', useFactory: () => ({}) }),
      ],
      providers: [EventsWorker],
    });
    expect(error).toBeInstanceOf(DuplicateBufferError);
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
  it('names the buffer, the option and the value', async () => {
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events', batchSize: 0 })],
      providers: [EventsWorker],
    });
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error).toMatchObject({ code: 'BUFIO_INVALID_OPTIONS', option: 'batchSize', value: 0 });
    expect(error.message).toBe(
      'buffer "events": invalid option "batchSize": got 0, expected an integer >= 1',
    );
  });

  it('refuses an unknown option', async () => {
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events', batchsize: 5 } as never)],
      providers: [EventsWorker],
    });
    expect(error.message).toBe(
      'buffer "events": invalid option "batchsize": got 5, expected no such option',
    );
  });

  it('reports a bad default as the defaults`, not a buffer`s', async () => {
    const error = await bootError({
      imports: [
        BufIOModule.forRoot({ flushInterval: -1 }),
        BufIOModule.forFeature({ name: 'events' }),
      ],
      providers: [EventsWorker],
    });
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toBe(
      'BufIOModule.forRoot(): invalid option "flushInterval": got -1, expected a finite number from 0 to 2147483647',
    );
  });

  it('refuses one storage instance in the defaults, as buffers cannot share it', async () => {
    const error = await bootError({
      imports: [BufIOModule.forRoot({ storage: new MemoryStorage() as never })],
    });
    expect(error).toMatchObject({ code: 'BUFIO_INVALID_OPTIONS', option: 'storage' });
    expect(error.message).toContain('one storage instance cannot serve several buffers');
  });

  it('refuses a buffer-level option in the defaults', async () => {
    const error = await bootError({ imports: [BufIOModule.forRoot({ name: 'x' } as never)] });
    expect(error.message).toMatch(/^BufIOModule\.forRoot\(\): invalid option "name": got "x"/);
  });

  it('refuses a flushCron when @nestjs/schedule is not imported', async () => {
    const error = await bootError({
      imports: [BufIOModule.forFeature({ name: 'events', flushCron: '0 * * * * *' })],
      providers: [EventsWorker],
    });
    expect(error).toMatchObject({ code: 'BUFIO_INVALID_OPTIONS', option: 'flushCron' });
    expect(error.message).toBe(
      'buffer "events": invalid option "flushCron": got "0 * * * * *", expected to be used with @nestjs/schedule: install it and import ScheduleModule.forRoot() in the application',
    );
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
      const error = await bootError({
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
      const error = await bootError({
        imports: [fromEnv(), BufIOModule.forFeature({ name: 'events' })],
        providers: [EventsWorker],
      });
      expect(error.message).toBe(
        'BufIOModule.forRoot(): invalid option "flushInterval": got -5, expected a finite number from 0 to 2147483647',
      );
    });

    it('a buffer`s own option from the environment names the buffer', async () => {
      process.env.EVENTS_RETRIES = 'many';
      const error = await bootError({
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

  it('refuses an async factory that returns something other than an object', async () => {
    const error = await bootError({
      imports: [BufIOModule.forFeatureAsync({ name: 'events', useFactory: () => 5 as never })],
      providers: [EventsWorker],
    });
    expect(error.message).toBe(
      'BufIOModule.forFeatureAsync(): invalid option "options": got 5, expected an object',
    );
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
    const moduleRef = await Test.createTestingModule({
      imports: [BufIOModule.forFeature({ name: 'events' })],
      providers: [EventsWorker],
    })
      .setLogger(new CapturingLogger())
      .compile();
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
