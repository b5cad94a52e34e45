import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { UnsupportedError } from '../core/errors.js';
import type { BufIOMetricsOptions, MetricsAttachment } from '../metrics/index.js';
import { BufIORegistry } from './bufio.registry.js';
import { BUFIO_METRICS_OPTIONS } from './bufio.tokens.js';

type MetricsEntry = typeof import('../metrics/index.js');

/**
 * Attaches every buffer of the application to BufIO's Prometheus metrics at `onModuleInit` (the
 * buffers exist by then, and none has started), and detaches them at `onApplicationShutdown`,
 * after they have drained. The metrics are registered once per registry, however many buffers
 * and applications share it.
 */
@Injectable()
export class BufIOMetricsBinder implements OnModuleInit, OnApplicationShutdown {
  private attachments: MetricsAttachment[] = [];

  constructor(
    private readonly registry: BufIORegistry,
    @Inject(BUFIO_METRICS_OPTIONS) private readonly options: BufIOMetricsOptions,
  ) {}

  async onModuleInit(): Promise<void> {
    const { BufIOMetrics } = await loadMetrics();
    const metrics = BufIOMetrics.forRegistry(this.options);
    for (const { buffer } of this.registry.all()) this.attachments.push(metrics.attach(buffer));
  }

  onApplicationShutdown(): void {
    for (const attachment of this.attachments.splice(0)) attachment.detach();
  }
}

/**
 * Loaded when the module starts rather than imported at the top, so that `@risemaxi/bufio/nest`
 * works without prom-client, an optional peer dependency, for applications that do not measure.
 */
async function loadMetrics(): Promise<MetricsEntry> {
  try {
    return await import('../metrics/index.js');
  } catch (error) {
    // The code is ERR_MODULE_NOT_FOUND from the ES module build, MODULE_NOT_FOUND from CommonJS.
    const code = (error as { code?: unknown } | null)?.code;
    const missing =
      error instanceof Error &&
      (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
      error.message.includes('prom-client');
    if (!missing) throw error;
    throw new UnsupportedError(
      'BufIOMetricsModule needs prom-client, an optional peer dependency of @risemaxi/bufio: ' +
        'install it (npm install prom-client)',
    );
  }
}
