import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SETTINGS } from '../settings.js';
import type { EventDto } from './event.js';

/** The events table, in an embedded SQLite database: one transaction per batch. */
@Injectable()
export class EventsRepository implements OnApplicationShutdown {
  /** Transactions committed: one per batch the worker wrote. */
  writes = 0;

  private readonly db: Database.Database;
  private readonly insertAll: (events: readonly EventDto[]) => void;
  private readonly delay: number;

  constructor(config: ConfigService) {
    const path = config.get<string>(SETTINGS.dbPath.env, SETTINGS.dbPath.default);
    this.delay = Number(config.get(SETTINGS.writeDelay.env, SETTINGS.writeDelay.default));
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(
      'CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, type TEXT NOT NULL, payload TEXT, at INTEGER NOT NULL)',
    );
    const insert = this.db.prepare('INSERT INTO events (type, payload, at) VALUES (?, ?, ?)');
    this.insertAll = this.db.transaction((events: readonly EventDto[]) => {
      for (const e of events) {
        insert.run(e.type, e.payload === undefined ? null : JSON.stringify(e.payload), e.at);
      }
    });
  }

  /** Writes the events in one transaction: all of them, or none. */
  async insertMany(events: readonly EventDto[]): Promise<void> {
    if (this.delay > 0) await sleep(this.delay);
    this.insertAll(events);
    this.writes++;
  }

  /** Rows in the table. */
  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
  }

  /**
   * Closes the database in `onApplicationShutdown`, which Nest runs after every
   * `beforeApplicationShutdown` hook: after BufIO has drained into it. Closing it earlier, in
   * `onModuleDestroy`, would leave the drain nowhere to write.
   */
  onApplicationShutdown(): void {
    this.db.close();
  }
}
