import { Body, Controller, Get, HttpCode, HttpStatus, Post } from '@nestjs/common';
import type { BufIO, BufIOStats } from '@risemaxi/bufio';
import { BufIOService, InjectBuffer } from '@risemaxi/bufio/nest';
import { type EventDto, parseEvents } from './event.js';
import { EventsRepository } from './events.repository.js';

/** Accepts events fast (into the buffer) and reports on them. */
@Controller('events')
export class EventsController {
  constructor(
    @InjectBuffer('events') private readonly events: BufIO<EventDto>,
    private readonly bufio: BufIOService,
    private readonly repo: EventsRepository,
  ) {}

  /**
   * One event or an array. `202 Accepted` once the buffer holds them: they are written to the
   * database by the next batch. During shutdown the buffer refuses them: `503` (see
   * `BufIOExceptionFilter`), so the client knows to retry elsewhere.
   */
  @Post()
  @HttpCode(HttpStatus.ACCEPTED)
  async create(@Body() body: unknown): Promise<{ accepted: number }> {
    const events = parseEvents(body);
    await this.events.push(events);
    return { accepted: events.length };
  }

  /** Every buffer's counters, by name. */
  @Get('stats')
  stats(): Record<string, BufIOStats> {
    return this.bufio.stats();
  }

  /** Rows in the database: events written so far. */
  @Get('count')
  count(): { rows: number } {
    return { rows: this.repo.count() };
  }
}
