import type { BufIOMetricsOptions } from '../../metrics/index.js';
import type { AsyncOptions } from './async-options.interface.js';

/** Builds the options of `BufIOMetricsModule` in a class (`forRootAsync({ useClass })`). */
export interface BufIOMetricsOptionsFactory {
  createBufIOMetricsOptions(): BufIOMetricsOptions | Promise<BufIOMetricsOptions>;
}

/** How `BufIOMetricsModule.forRootAsync()` obtains its options. */
export type BufIOMetricsModuleAsyncOptions = AsyncOptions<
  BufIOMetricsOptions,
  BufIOMetricsOptionsFactory
>;
