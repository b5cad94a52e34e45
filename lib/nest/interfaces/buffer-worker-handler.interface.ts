import type { Worker } from '../../core/worker.js';

/**
 * What a `@BufferWorker(name)` class implements: `work(records, context)` processes one batch.
 * Its return value decides each record's fate, as for the core `Worker`.
 *
 * @example
 * @BufferWorker('events')
 * export class EventsWorker implements BufferWorkerHandler<EventDto> {
 *   async work(records: EventDto[]) { await this.repo.insertMany(records); }
 * }
 */
export type BufferWorkerHandler<T, U = unknown> = Worker<T, U>;
