import { describe, expect, it } from '@jest/globals';
import { BufIOService } from '../../lib/nest/index.js';
import { useSampleApp } from './support.js';

const sample = useSampleApp('ops');

async function get(path: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(sample.url(path));
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

async function postEvents(count: number): Promise<void> {
  const res = await fetch(sample.url('/events'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(
      Array.from({ length: count }, (_, i) => ({ type: 'view', payload: { i } })),
    ),
  });
  expect(res.status).toBe(202);
}

describe('the sample app for operators', () => {
  it('serves the buffers as Prometheus metrics at GET /metrics', async () => {
    const before = await get('/metrics');
    expect(before.status).toBe(200);
    expect(before.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(before.text).toContain('bufio_records_total{buffer="events",outcome="pushed"} 0');

    await postEvents(3);
    await postEvents(2);
    const buffered = (await get('/metrics')).text;
    expect(buffered).toContain('bufio_records_total{buffer="events",outcome="pushed"} 5');
    expect(buffered).toContain('bufio_buffered_records{buffer="events"} 5');
    expect(buffered).toContain('bufio_capacity_records{buffer="events"} 100000');

    await sample.app().get(BufIOService).flushAll();
    const written = (await get('/metrics')).text;
    expect(written).toContain('bufio_records_total{buffer="events",outcome="processed"} 5');
    expect(written).toContain('bufio_buffered_records{buffer="events"} 0');
    expect(written).toContain('bufio_batch_size_bucket{le="5",buffer="events"} 1');
    expect(written).toContain('bufio_batch_size_sum{buffer="events"} 5');
    expect(written).toMatch(/bufio_work_duration_seconds_count\{buffer="events"\} 1\n/);
  });

  it('answers GET /health with 200 and the details of each buffer while they are up', async () => {
    const res = await get('/health');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({
      status: 'ok',
      info: {
        bufio: {
          status: 'up',
          buffers: {
            events: {
              status: 'up',
              state: 'running',
              storage: 'reachable',
              buffered: 0,
              capacity: 100000,
              deadLettered: 0,
            },
          },
        },
      },
    });
  });

  it('answers GET /health with 503 and the reason once a buffer is down', async () => {
    await sample.app().get(BufIOService).get('events').stop();
    const res = await get('/health');
    expect(res.status).toBe(503);
    expect(JSON.parse(res.text)).toMatchObject({
      status: 'error',
      error: {
        bufio: {
          status: 'down',
          message: 'buffer "events": buffer is stopped, not running',
          buffers: { events: { status: 'down', state: 'stopped' } },
        },
      },
    });
  });
});
