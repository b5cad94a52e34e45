import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { type DynamicModule, type INestApplication, Module, type Type } from '@nestjs/common';
import { register, Registry } from 'prom-client';
import { BufIOMetrics, type BufIOMetricsOptions } from '../../lib/metrics/index.js';
import {
  BufferWorker,
  BufIOMetricsModule,
  BufIOModule,
  type BufIOMetricsOptionsFactory,
  BufIOService,
} from '../../lib/nest/index.js';
import { drain } from '../../lib/testing/index.js';
import { useNestApps } from '../support/nest-apps.js';
import { sample } from '../support/prometheus.js';

@BufferWorker('clicks')
class ClicksWorker {
  async work(): Promise<void> {}
}

@BufferWorker('views')
class ViewsWorker {
  async work(records: number[]): Promise<(number | Error)[]> {
    return records.map((r) => (r < 0 ? new Error('negative') : r));
  }
}

function appModule(metrics: Parameters<typeof BufIOMetricsModule.forRoot>[0] = {}) {
  @Module({
    imports: [
      BufIOModule.forRoot({ flushInterval: 600_000, retry: { maxAttempts: 1 } }),
      BufIOModule.forFeature({ name: 'clicks' }, { name: 'views' }),
      BufIOMetricsModule.forRoot(metrics),
    ],
    providers: [ClicksWorker, ViewsWorker],
  })
  class AppModule {}
  return AppModule;
}

const apps = useNestApps();
const boot = (module: Type<unknown>): Promise<INestApplication> => apps.boot({ imports: [module] });
// After the apps close (hooks run in the order they are declared): leave prom-client's default
// registry as we found it.
afterEach(() => {
  BufIOMetrics.forRegistry().close();
});

describe('BufIOMetricsModule', () => {
  it("measures every buffer of two applications sharing prom-client's default registry, registered once", async () => {
    const first = await boot(appModule());
    // A second application in the same process: no "metric already registered" error.
    const second = await boot(appModule());

    const one = first.get(BufIOService);
    const two = second.get(BufIOService);
    await one.push('clicks', [1, 2, 3]);
    await one.push('views', [1, -1]);
    await two.push('clicks', [4]);
    await drain(one.get('views'));
    await drain(one.get('clicks'));

    // One set of metrics in the registry, each once.
    expect(register.getMetricsAsArray().filter((m) => m.name.startsWith('bufio_')).length).toBe(6);
    // Same-named buffers of the two applications add up.
    expect(
      await sample(register, 'bufio_records_total', { buffer: 'clicks', outcome: 'pushed' }),
    ).toBe(4);
    expect(
      await sample(register, 'bufio_records_total', { buffer: 'clicks', outcome: 'processed' }),
    ).toBe(3);
    expect(
      await sample(register, 'bufio_records_total', { buffer: 'views', outcome: 'dead_lettered' }),
    ).toBe(1);
    expect(await sample(register, 'bufio_buffered_records', { buffer: 'clicks' })).toBe(1);
    expect(
      await sample(register, 'bufio_batch_size', { buffer: 'clicks' }, 'bufio_batch_size_count'),
    ).toBe(1);
    expect(BufIOMetrics.forRegistry().buffers().sort()).toEqual([
      'clicks',
      'clicks',
      'views',
      'views',
    ]);

    // Closing one application detaches its buffers; the totals stay, its buffered record is gone
    // (drained into the worker at shutdown).
    await apps.close(second);
    expect(BufIOMetrics.forRegistry().buffers().sort()).toEqual(['clicks', 'views']);
    expect(
      await sample(register, 'bufio_records_total', { buffer: 'clicks', outcome: 'processed' }),
    ).toBe(4);
    expect(await sample(register, 'bufio_buffered_records', { buffer: 'clicks' })).toBe(0);
  });

  it('attaches each buffer once when the module is imported twice in one application', async () => {
    const registry = new Registry();
    @Module({
      imports: [
        BufIOModule.forFeature({ name: 'clicks' }),
        BufIOMetricsModule.forRoot({ registry }),
        BufIOMetricsModule.forRoot({ registry }),
      ],
      providers: [ClicksWorker],
    })
    class TwiceModule {}
    const app = await boot(TwiceModule);
    const bufio = app.get(BufIOService);
    await bufio.push('clicks', [1, 2]);
    await drain(bufio.get('clicks'));
    expect(BufIOMetrics.forRegistry({ registry }).buffers()).toEqual(['clicks']);
    expect(
      await sample(registry, 'bufio_batch_size', { buffer: 'clicks' }, 'bufio_batch_size_count'),
    ).toBe(1);
  });

  it('fails the boot on a wrong option, naming it', async () => {
    await expect(boot(appModule({ durationBuckets: [] }))).rejects.toThrow(
      'BufIOMetrics: invalid option "durationBuckets": got an array of length 0, expected a non-empty array',
    );
  });

  describe('forRootAsync', () => {
    const REGISTRY = 'metrics-registry';

    @Module({ providers: [{ provide: REGISTRY, useValue: new Registry() }], exports: [REGISTRY] })
    class RegistryModule {}

    class MetricsOptions implements BufIOMetricsOptionsFactory {
      createBufIOMetricsOptions(): BufIOMetricsOptions {
        return { registry: classRegistry, batchSizeBuckets: [1, 2, 3] };
      }
    }
    const classRegistry = new Registry();

    function withMetrics(metrics: DynamicModule) {
      @Module({
        imports: [BufIOModule.forFeature({ name: 'clicks' }), metrics],
        providers: [ClicksWorker],
      })
      class AsyncModule {}
      return AsyncModule;
    }

    it('takes its options from a factory with injected providers', async () => {
      const app = await boot(
        withMetrics(
          BufIOMetricsModule.forRootAsync({
            imports: [RegistryModule],
            inject: [REGISTRY],
            useFactory: (registry: Registry) => ({ registry }),
          }),
        ),
      );
      const registry = app.get<Registry>(REGISTRY, { strict: false });
      const bufio = app.get(BufIOService);
      await bufio.push('clicks', [1, 2]);
      await drain(bufio.get('clicks'));
      expect(
        await sample(registry, 'bufio_records_total', { buffer: 'clicks', outcome: 'processed' }),
      ).toBe(2);
      BufIOMetrics.forRegistry({ registry }).close();
    });

    it('takes its options from a class', async () => {
      const app = await boot(
        withMetrics(BufIOMetricsModule.forRootAsync({ useClass: MetricsOptions })),
      );
      const bufio = app.get(BufIOService);
      await bufio.push('clicks', [1, 2, 3]);
      await drain(bufio.get('clicks'));
      expect(
        await sample(
          classRegistry,
          'bufio_batch_size',
          { buffer: 'clicks', le: 3 },
          'bufio_batch_size_bucket',
        ),
      ).toBe(1);
      BufIOMetrics.forRegistry({ registry: classRegistry }).close();
    });

    it('refuses a registration without a factory, a class or an existing provider', () => {
      expect(() => BufIOMetricsModule.forRootAsync({})).toThrow(
        'BufIOMetricsModule.forRootAsync(): invalid option "useFactory": got undefined, expected one of useFactory, useClass or useExisting',
      );
    });
  });
});
