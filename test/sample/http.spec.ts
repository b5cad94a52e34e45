import { describe, expect, it } from '@jest/globals';
import { BufIOService } from '../../lib/nest/index.js';
import { useSampleApp } from './support.js';

const sample = useSampleApp('http');

async function call(
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(sample.url(path), {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return {
    status: res.status,
    body: (await res.json()) as Record<string, unknown>,
    headers: res.headers,
  };
}

describe('the sample app over HTTP', () => {
  it('accepts one event or an array with 202, buffers them, and writes them on flush', async () => {
    expect(await call('POST', '/events', { type: 'click', payload: { x: 1 } })).toMatchObject({
      status: 202,
      body: { accepted: 1 },
    });
    expect(
      await call('POST', '/events', [
        { type: 'a' },
        { type: 'b', at: 1700000000000 },
        { type: 'c' },
      ]),
    ).toMatchObject({ status: 202, body: { accepted: 3 } });

    expect(await call('GET', '/events/count')).toMatchObject({ status: 200, body: { rows: 0 } });
    const stats = await call('GET', '/events/stats');
    expect(stats.status).toBe(200);
    expect(stats.body.events).toMatchObject({
      name: 'events',
      state: 'running',
      pushed: 4,
      buffered: 4,
    });

    await sample.app().get(BufIOService).flushAll();
    expect(await call('GET', '/events/count')).toMatchObject({ status: 200, body: { rows: 4 } });
    expect((await call('GET', '/events/stats')).body.events).toMatchObject({
      processed: 4,
      batches: 1,
    });
  });

  it('answers 400 to a body that is not an event', async () => {
    expect(await call('POST', '/events', {})).toMatchObject({
      status: 400,
      body: { message: 'event: "type" must be a string of 1 to 100 characters' },
    });
    expect(await call('POST', '/events', [])).toMatchObject({
      status: 400,
      body: { message: 'expected an event or a non-empty array' },
    });
    expect(await call('POST', '/events', [{ type: 'ok' }, 5])).toMatchObject({
      status: 400,
      body: { message: 'event 1: expected an object' },
    });
    expect((await call('GET', '/events/stats')).body.events).toMatchObject({ pushed: 4 });
  });

  it('answers 503 with Retry-After once the buffer is stopping, after draining what it held', async () => {
    await call('POST', '/events', { type: 'late' });
    await sample.app().get(BufIOService).get('events').stop();
    const refused = await call('POST', '/events', { type: 'too late' });
    expect(refused).toMatchObject({
      status: 503,
      body: {
        code: 'BUFIO_CLOSED',
        message: 'buffer "events" is stopped and no longer accepts records',
      },
    });
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await call('GET', '/events/count')).toMatchObject({ body: { rows: 5 } });
  });
});
