import { BadRequestException } from '@nestjs/common';

/** An analytics event, as clients post it. */
export interface EventDto {
  /** What happened: `page_view`, `click`, ... */
  type: string;
  /** Anything the client attaches; stored as JSON. */
  payload?: unknown;
  /** When it happened (epoch ms); the server's clock when absent. */
  at?: number;
}

const MAX_PER_REQUEST = 1000;

/**
 * Reads a request body holding one event or an array of events.
 *
 * @throws BadRequestException (400) naming what is wrong.
 */
export function parseEvents(body: unknown): EventDto[] {
  const list = Array.isArray(body) ? (body as unknown[]) : [body];
  if (list.length === 0) throw new BadRequestException('expected an event or a non-empty array');
  if (list.length > MAX_PER_REQUEST) {
    throw new BadRequestException(`at most ${MAX_PER_REQUEST} events per request`);
  }
  return list.map((item, i) => {
    const where = Array.isArray(body) ? `event ${i}` : 'event';
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new BadRequestException(`${where}: expected an object`);
    }
    const { type, payload, at } = item as Record<string, unknown>;
    if (typeof type !== 'string' || type.length === 0 || type.length > 100) {
      throw new BadRequestException(`${where}: "type" must be a string of 1 to 100 characters`);
    }
    if (at !== undefined && (typeof at !== 'number' || !Number.isFinite(at))) {
      throw new BadRequestException(`${where}: "at" must be a number (epoch ms)`);
    }
    return { type, payload, at: at ?? Date.now() };
  });
}
