import { afterAll, describe, expect, it } from '@jest/globals';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { post } from '../../sample/run/load.js';
import { countRows, runNode, tempDir, waitForOutput } from './support.js';

const dir = tempDir('shutdown');
afterAll(() => dir.remove());

/** Outcome of requests, counted in records. */
interface Tally {
  accepted: number;
  refused: Record<number, number>;
  unanswered: number;
}

async function send(agent: Agent, url: URL, events: number, tally: Tally): Promise<void> {
  const body = JSON.stringify(
    Array.from({ length: events }, (_, i) => ({ type: 'test', payload: { i } })),
  );
  try {
    const status = await post(agent, url, body);
    if (status >= 200 && status < 300) tally.accepted += events;
    else tally.refused[status] = (tally.refused[status] ?? 0) + events;
  } catch {
    tally.unanswered += events;
  }
}

describe('the sample server on SIGTERM', () => {
  it('writes every record it accepted, and refuses (503) those that arrive during the drain', async () => {
    const db = join(dir.path, 'events.db');
    const server = runNode('dist/sample/server.js', [], {
      PORT: '0',
      BUFIO_DB_PATH: db,
      // Nothing flushes before the signal: no size trigger, no interval.
      BUFIO_BATCH_SIZE: '100000',
      BUFIO_FLUSH_INTERVAL: '600000',
      BUFIO_SHUTDOWN_TIMEOUT: '20000',
      // A slow database keeps the drain open for a while, for requests to arrive during it.
      SAMPLE_WRITE_DELAY_MS: '1000',
    });
    try {
      const [, address] = await waitForOutput(server, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const url = new URL('/events', address);
      const agent = new Agent({ keepAlive: true, maxSockets: 8 });

      // Before the signal: 2,000 records, all accepted, none written yet.
      const before: Tally = { accepted: 0, refused: {}, unanswered: 0 };
      for (let round = 0; round < 25; round++) {
        await Promise.all(Array.from({ length: 8 }, () => send(agent, url, 10, before)));
      }
      expect(before).toEqual({ accepted: 2000, refused: {}, unanswered: 0 });
      const stats = (await (await fetch(new URL('/events/stats', address))).json()) as {
        events: { buffered: number; processed: number };
      };
      expect(stats.events).toMatchObject({ buffered: 2000, processed: 0 });

      // During shutdown: four clients keep posting until the process is gone.
      const during: Tally = { accepted: 0, refused: {}, unanswered: 0 };
      let running = true;
      void server.exited.then(() => {
        running = false;
      });
      const clients = Array.from({ length: 4 }, async () => {
        while (running) {
          const unanswered = during.unanswered;
          await send(agent, url, 5, during);
          if (during.unanswered > unanswered) await new Promise((r) => setTimeout(r, 10));
        }
      });
      await new Promise((r) => setTimeout(r, 50));
      server.process.kill('SIGTERM');
      const exit = await server.exited;
      await Promise.all(clients);
      agent.destroy();

      // Nest re-raises the signal once its shutdown hooks are done.
      expect(exit).toEqual({ code: null, signal: 'SIGTERM' });
      const accepted = before.accepted + during.accepted;
      const rows = countRows(db);
      // Every accepted record is in the database. A request that got no answer may or may not
      // have been taken: it may account for extra rows, never for missing ones.
      expect(rows).toBeGreaterThanOrEqual(accepted);
      expect(rows - accepted).toBeLessThanOrEqual(during.unanswered);
      // The drain took a second: requests in that window were refused with 503, nothing else.
      expect(Object.keys(during.refused)).toEqual(['503']);
      expect(during.refused[503]).toBeGreaterThan(0);
      expect(server.stdout).toMatch(
        new RegExp(`buffer "events" drained in \\d+ ms: ${rows} processed, 0 dead-lettered`),
      );
    } finally {
      server.process.kill('SIGKILL');
    }
  });
});
