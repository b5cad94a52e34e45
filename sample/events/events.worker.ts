import { BufferWorker, type BufferWorkerHandler } from '@risemaxi/bufio/nest';
import type { EventDto } from './event.js';
import { EventsRepository } from './events.repository.js';

/** Processes the `events` buffer: each batch becomes one database transaction. */
@BufferWorker('events')
export class EventsWorker implements BufferWorkerHandler<EventDto> {
  constructor(private readonly repo: EventsRepository) {}

  async work(records: EventDto[]): Promise<void> {
    await this.repo.insertMany(records);
  }
}
