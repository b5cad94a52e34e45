import 'reflect-metadata';
import { describe, expect, it, jest } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { BufIO, InvalidOptionsError } from '../../lib/index.js';
import {
  BufferWorker,
  type BufferWorkerHandler,
  BufIOModule,
  BufIOService,
  getBufferToken,
  InjectBuffer,
  OnBufferEvent,
} from '../../lib/nest/index.js';
import { createTestBuffer, drain } from '../../lib/testing/index.js';
import { useNestApps } from '../support/nest-apps.js';

// The application under test: a service pushes events, a worker writes them through a repository.

interface EventDto {
  type: string;
}

@Injectable()
class EventsRepository {
  async insertMany(_events: EventDto[]): Promise<void> {
    throw new Error('no database in unit tests');
  }
}

@BufferWorker('events')
class EventsWorker implements BufferWorkerHandler<EventDto> {
  constructor(private readonly repo: EventsRepository) {}

  async work(events: EventDto[]): Promise<void> {
    await this.repo.insertMany(events);
  }
}

@Injectable()
class TrackingService {
  readonly deadLettered: EventDto[] = [];

  constructor(@InjectBuffer('events') private readonly events: BufIO<EventDto>) {}

  track(type: string): Promise<void> {
    return this.events.push({ type });
  }

  @OnBufferEvent('events', 'deadLettered')
  onDeadLettered({ records }: { records: readonly EventDto[] }): void {
    this.deadLettered.push(...records);
  }
}

@Module({
  imports: [BufIOModule.forRoot(), BufIOModule.forFeature({ name: 'events' })],
  providers: [EventsRepository, EventsWorker, TrackingService],
})
class AppModule {}

const apps = useNestApps();

interface FakeRepository {
  insertMany: jest.Mock<(events: EventDto[]) => Promise<void>>;
}

function fakeRepository(): FakeRepository {
  return { insertMany: jest.fn(async (_events: EventDto[]) => {}) };
}

/** Boots the application with `events` in place of its buffer and `repo` of its repository. */
function bootWithTestBuffer(events: BufIO<EventDto>, repo: FakeRepository) {
  return apps.boot(
    Test.createTestingModule({ imports: [AppModule] })
      .overrideProvider(getBufferToken('events'))
      .useValue(events)
      .overrideProvider(EventsRepository)
      .useValue(repo),
  );
}

describe('testing a NestJS application that uses BufIO', () => {
  it("replaces a buffer with createTestBuffer(): the app's worker processes it, on demand", async () => {
    const repo = fakeRepository();
    const events = createTestBuffer<EventDto>({ name: 'events' });
    const nest = await bootWithTestBuffer(events, repo);

    await nest.get(TrackingService).track('signup');
    await nest.get(TrackingService).track('login');
    expect(repo.insertMany).not.toHaveBeenCalled(); // its flush timer never fires on its own

    await drain(events);
    expect(repo.insertMany.mock.calls).toEqual([[[{ type: 'signup' }, { type: 'login' }]]]);
    // It is the application's buffer in every respect: registered, started, stopped at close.
    expect(nest.get(BufIOService).get('events')).toBe(events);
    expect(events.state).toBe('running');
    await nest.get(TrackingService).track('logout');
    await apps.close(nest);
    expect(events.state).toBe('stopped');
    expect(repo.insertMany).toHaveBeenLastCalledWith([{ type: 'logout' }]); // drained at close
  });

  it('attaches the event handlers of a buffer to the one that replaced it', async () => {
    const repo = fakeRepository();
    repo.insertMany.mockRejectedValue(new Error('constraint violation'));
    const events = createTestBuffer<EventDto>({ name: 'events', retry: { maxAttempts: 1 } });
    const nest = await bootWithTestBuffer(events, repo);
    await nest.get(TrackingService).track('broken');
    await drain(events);
    expect(nest.get(TrackingService).deadLettered).toEqual([{ type: 'broken' }]);
  });

  it('replaces a buffer with a mock: its worker and handlers are left out', async () => {
    const push = jest.fn(async (_records: unknown) => {});
    const nest = await apps.boot(
      Test.createTestingModule({ imports: [AppModule] })
        .overrideProvider(getBufferToken('events'))
        .useValue({ push }),
    );
    await nest.get(TrackingService).track('signup');
    expect(push).toHaveBeenCalledWith({ type: 'signup' });
    expect(nest.get(BufIOService).names()).toEqual([]);
  });

  it('refuses a replacing buffer with another name, naming both', async () => {
    const builder = Test.createTestingModule({ imports: [AppModule] })
      .overrideProvider(getBufferToken('events'))
      .useValue(createTestBuffer<EventDto>({ name: 'evnets' }));
    const error = await apps.bootError(builder);
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toBe(
      `the provider of getBufferToken('events'): invalid option "name": got "evnets", expected "events": ` +
        `a buffer put in place of getBufferToken('events') must have the name of the buffer it replaces`,
    );
  });

  it('replaces the worker with a subclass, which keeps its @BufferWorker', async () => {
    const written: EventDto[][] = [];
    class FakeEventsWorker extends EventsWorker {
      override async work(events: EventDto[]): Promise<void> {
        written.push(events);
      }
    }
    const nest = await apps.boot(
      Test.createTestingModule({ imports: [AppModule] })
        .overrideProvider(EventsWorker)
        .useClass(FakeEventsWorker),
    );
    await nest.get(TrackingService).track('signup');
    await drain(nest.get<BufIO<EventDto>>(getBufferToken('events')));
    expect(written).toEqual([[{ type: 'signup' }]]);
  });

  it("replaces the worker's dependencies, keeping the real worker", async () => {
    const repo = fakeRepository();
    const nest = await apps.boot(
      Test.createTestingModule({ imports: [AppModule] })
        .overrideProvider(EventsRepository)
        .useValue(repo),
    );
    await nest.get(TrackingService).track('signup');
    await drain(nest.get(BufIOService).get('events'));
    expect(repo.insertMany).toHaveBeenCalledWith([{ type: 'signup' }]);
  });

  it('unit-tests a producer without BufIOModule, with a test buffer as its provider', async () => {
    const written: EventDto[] = [];
    const moduleRef = await Test.createTestingModule({
      providers: [
        TrackingService,
        {
          provide: getBufferToken('events'),
          useValue: createTestBuffer<EventDto>({
            name: 'events',
            worker: (events) => void written.push(...events),
          }),
        },
      ],
    }).compile();
    await moduleRef.get(TrackingService).track('signup');
    await drain(moduleRef.get<BufIO<EventDto>>(getBufferToken('events')));
    expect(written).toEqual([{ type: 'signup' }]);
    await moduleRef.close();
  });
});
