// A stand-in for the repository the README's NestJS snippets inject.
import type { Event } from './db.js';

export type EventDto = Event;

export declare class EventsRepository {
  insertMany(events: readonly EventDto[]): Promise<void>;
}
