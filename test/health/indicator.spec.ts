import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { type INestApplication, Module, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { BufIOHealthIndicator } from '../../lib/health/index.js';
import {
  BufferWorker,
  BufIOModule,
  BufIOService,
  UnknownBufferError,
} from '../../lib/nest/index.js';
import { drain } from '../../lib/testing/index.js';
import { useNestApps } from '../support/nest-apps.js';
import { SwitchableStorage } from './support.js';

@BufferWorker('orders')
class OrdersWorker {
  work(records: number[]): (number | Error)[] {
    return records.map((r) => (r < 0 ? new Error('rejected') : r));
  }
}

@BufferWorker('audit')
class AuditWorker {
  work(): void {}
}

const auditStorage = new SwitchableStorage<unknown>();

@Module({
  imports: [
    TerminusModule.forRoot({ logger: false }),
    BufIOModule.forRoot({ flushInterval: 600_000, retry: { maxAttempts: 1 } }),
    BufIOModule.forFeature(
      { name: 'orders', maxBufferedRecords: 100 },
      { name: 'audit', storage: auditStorage },
    ),
  ],
  providers: [OrdersWorker, AuditWorker, BufIOHealthIndicator],
})
class AppModule {}

// Before the apps close (hooks run in the order they are declared): a hanging storage is let go.
afterEach(() => {
  auditStorage.mode = 'ok';
});
const apps = useNestApps();
const boot = (): Promise<INestApplication> => apps.boot({ imports: [AppModule] });

/** What `GET /health` would answer: terminus' result, or the body of its 503. */
async function probe(
  nest: INestApplication,
  check: (indicator: BufIOHealthIndicator) => Promise<unknown>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const indicator = nest.get(BufIOHealthIndicator);
  try {
    const body = await nest.get(HealthCheckService).check([() => check(indicator) as never]);
    return { status: 200, body: body as unknown as Record<string, unknown> };
  } catch (error) {
    if (!(error instanceof ServiceUnavailableException)) throw error;
    return { status: 503, body: error.getResponse() as Record<string, unknown> };
  }
}

describe('BufIOHealthIndicator (terminus)', () => {
  it('is up with per-buffer details, down with the reason, and up again', async () => {
    const nest = await boot();
    const healthy = await probe(nest, (i) => i.isHealthy('bufio'));
    expect(healthy).toMatchObject({
      status: 200,
      body: {
        status: 'ok',
        details: {
          bufio: {
            status: 'up',
            buffers: {
              orders: { status: 'up', state: 'running', storage: 'reachable', capacity: 100 },
              audit: { status: 'up', storage: 'reachable' },
            },
          },
        },
      },
    });

    const bufio = nest.get(BufIOService);
    await bufio.push('orders', [1, -1]);
    await drain(bufio.get('orders'));
    auditStorage.mode = 'unavailable';
    const down = await probe(nest, (i) => i.isHealthy('bufio', { storageTimeout: 100 }));
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({
      status: 'error',
      error: {
        bufio: {
          status: 'down',
          message:
            'buffer "orders": 1 record(s) dead-lettered since the previous check; ' +
            'buffer "audit": storage unreachable: Redis at 127.0.0.1:6379 is unavailable: connect ECONNREFUSED',
          buffers: {
            orders: { status: 'down', deadLettered: 1, newDeadLetters: 1 },
            audit: { status: 'down', storage: 'unreachable' },
          },
        },
      },
    });

    auditStorage.mode = 'ok';
    expect(await probe(nest, (i) => i.isHealthy('bufio'))).toMatchObject({
      status: 200,
      body: {
        details: {
          bufio: { status: 'up', buffers: { orders: { deadLettered: 1, newDeadLetters: 0 } } },
        },
      },
    });
  });

  it('checks only the named buffers, and keeps a separate memory per key', async () => {
    const nest = await boot();
    const bufio = nest.get(BufIOService);
    await bufio.push('orders', -5);
    await drain(bufio.get('orders'));
    auditStorage.mode = 'unavailable';

    const ordersOnly = await probe(nest, (i) => i.isHealthy('orders', { buffers: ['orders'] }));
    expect(ordersOnly.status).toBe(503);
    expect(
      Object.keys((ordersOnly.body.error as { orders: { buffers: object } }).orders.buffers),
    ).toEqual(['orders']);
    // Another key has not seen the dead letter yet: it reports it too.
    const readiness = await probe(nest, (i) => i.isHealthy('readiness', { buffers: ['orders'] }));
    expect(readiness.status).toBe(503);
    // The dead letters are not news for either key any more.
    expect((await probe(nest, (i) => i.isHealthy('orders', { buffers: ['orders'] }))).status).toBe(
      200,
    );
    expect(
      (await probe(nest, (i) => i.isHealthy('readiness', { buffers: ['orders'] }))).status,
    ).toBe(200);
  });

  it('reports a buffer down once the shutdown stopped it, and every buffer once the application closed', async () => {
    const nest = await boot();
    const indicator = nest.get(BufIOHealthIndicator);
    await nest.get(BufIOService).get('orders').stop();
    const result = await indicator.isHealthy('bufio', { buffers: ['orders'] });
    expect(result.bufio).toMatchObject({
      status: 'down',
      message: 'buffer "orders": buffer is stopped, not running',
    });

    await apps.close(nest);
    const closed = await indicator.isHealthy('bufio');
    expect(closed.bufio).toMatchObject({
      status: 'down',
      buffers: {
        orders: { status: 'down', state: 'stopped' },
        audit: { status: 'down', state: 'stopped' },
      },
    });
  });

  it('refuses an unknown buffer name and a wrong option', async () => {
    const nest = await boot();
    const indicator = nest.get(BufIOHealthIndicator);
    await expect(indicator.isHealthy('bufio', { buffers: ['nope'] })).rejects.toThrow(
      UnknownBufferError,
    );
    await expect(indicator.isHealthy('bufio', { fillDuration: -1 })).rejects.toThrow(
      'BufIOHealthIndicator: invalid option "fillDuration": got -1, expected a finite number from 0 to',
    );
  });
});
