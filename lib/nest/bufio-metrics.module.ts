import { type DynamicModule, Module } from '@nestjs/common';
import type { BufIOMetricsOptions } from '../metrics/index.js';
import { asyncOptionsProviders } from './bufio-async-options.js';
import { BufIOCoreModule } from './bufio-core.module.js';
import { BufIOMetricsBinder } from './bufio-metrics.binder.js';
import { BUFIO_METRICS_OPTIONS } from './bufio.tokens.js';
import type {
  BufIOMetricsModuleAsyncOptions,
  BufIOMetricsOptionsFactory,
} from './interfaces/bufio-metrics-module-options.interface.js';

/**
 * Exposes every buffer of the application as Prometheus metrics (`@risemaxi/bufio/metrics`:
 * `bufio_records_total`, `bufio_buffered_records`, `bufio_batch_size`,
 * `bufio_work_duration_seconds`, ...) in a prom-client registry. Import it once, in the root
 * module; it needs `prom-client` installed. Serving the registry (`GET /metrics`) is the
 * application's: see the ops guide.
 *
 * Several applications in one process (tests, a monorepo) may share a registry: the metrics are
 * registered in it once, and each application's buffers are attached to them.
 *
 * @example
 * imports: [BufIOModule.forRoot(), BufIOMetricsModule.forRoot(), ...]
 */
@Module({})
export class BufIOMetricsModule {
  /**
   * @param options `registry` (default: prom-client's `register`) and histogram buckets; checked
   * at boot, where a wrong one fails with `InvalidOptionsError`.
   */
  static forRoot(options: BufIOMetricsOptions = {}): DynamicModule {
    return {
      module: BufIOMetricsModule,
      imports: [BufIOCoreModule],
      providers: [{ provide: BUFIO_METRICS_OPTIONS, useValue: options }, BufIOMetricsBinder],
    };
  }

  /**
   * Like `forRoot`, with the options from a factory, a class or an existing provider: a registry
   * that another module provides, or buckets read from `ConfigService`.
   *
   * @throws InvalidOptionsError when none of `useFactory`, `useClass` and `useExisting` is given.
   */
  static forRootAsync(options: BufIOMetricsModuleAsyncOptions): DynamicModule {
    return {
      module: BufIOMetricsModule,
      imports: [BufIOCoreModule, ...(options.imports ?? [])],
      providers: [
        ...asyncOptionsProviders<BufIOMetricsOptions, BufIOMetricsOptionsFactory>(
          BUFIO_METRICS_OPTIONS,
          options,
          (factory) => factory.createBufIOMetricsOptions(),
          'BufIOMetricsModule.forRootAsync()',
        ),
        ...(options.extraProviders ?? []),
        BufIOMetricsBinder,
      ],
    };
  }
}
