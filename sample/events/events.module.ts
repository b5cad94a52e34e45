import { Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InvalidOptionsError, MemoryStorage, type Storage } from '@risemaxi/bufio';
import { BufIOModule } from '@risemaxi/bufio/nest';
import { FileStorage } from '@risemaxi/bufio/file';
import { SETTINGS, STORAGES } from '../settings.js';
import type { EventDto } from './event.js';
import { EventsController } from './events.controller.js';
import { EventsRepository } from './events.repository.js';
import { EventsWorker } from './events.worker.js';

/**
 * The events buffer's storage. A `FileStorage` is opened here, so that a directory another process
 * holds (`StorageLockedError`) or cannot read fails the boot rather than the first push.
 */
async function createStorage(config: ConfigService): Promise<Storage<EventDto>> {
  const kind = config.get<string>(SETTINGS.storage.env, SETTINGS.storage.default);
  if (kind === 'memory') return new MemoryStorage<EventDto>();
  if (kind === 'file') {
    const directory = config.get<string>(SETTINGS.fileDir.env, SETTINGS.fileDir.default);
    return FileStorage.open<EventDto>({ directory });
  }
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
      useFactory: async (config: ConfigService) => ({ storage: await createStorage(config) }),
    }),
  ],
  controllers: [EventsController],
  providers: [EventsRepository, EventsWorker],
  exports: [EventsRepository],
})
export class EventsModule {}
