import { Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InvalidOptionsError, MemoryStorage, type Storage } from '../../lib/index.js';
import { BufIOModule } from '../../lib/nest/index.js';
import { SETTINGS, STORAGES } from '../settings.js';
import type { EventDto } from './event.js';
import { EventsController } from './events.controller.js';
import { EventsRepository } from './events.repository.js';
import { EventsWorker } from './events.worker.js';

function createStorage(kind: string): Storage<EventDto> {
  if (kind === 'memory') return new MemoryStorage<EventDto>();
  throw new InvalidOptionsError(
    SETTINGS.storage.env,
    kind,
    `one of ${STORAGES.join(', ')}`,
    'sample',
  );
}

/** The events feature: its buffer, the worker that writes it to SQLite, the HTTP endpoints. */
@Module({
  imports: [
    BufIOModule.forFeatureAsync({
      name: 'events',
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        storage: createStorage(config.get<string>(SETTINGS.storage.env, SETTINGS.storage.default)),
      }),
    }),
  ],
  controllers: [EventsController],
  providers: [EventsRepository, EventsWorker],
  exports: [EventsRepository],
})
export class EventsModule {}
