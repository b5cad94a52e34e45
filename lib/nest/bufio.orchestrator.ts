import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { asError } from '../core/errors.js';
import { BUFIO_LOGGER_CONTEXT } from './bufio.constants.js';
import { BufIORegistry } from './bufio.registry.js';
import { BufIOScheduler } from './bufio.scheduler.js';

/**
 * Owns the buffers' lifecycle. `onApplicationBootstrap` starts every buffer (records pushed
 * earlier have waited in storage, and are processed now) and its `flushCron` job.
 * `beforeApplicationShutdown` stops every buffer, which refuses new records with
 * `BufIOClosedError` and drains within its `shutdownTimeout`; the drain summary is logged.
 *
 * Shutdown hooks run on `app.close()`, and on SIGTERM/SIGINT only after
 * `app.enableShutdownHooks()`.
 */
@Injectable()
export class BufIOOrchestrator implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(BUFIO_LOGGER_CONTEXT);

  constructor(
    private readonly registry: BufIORegistry,
    private readonly scheduler: BufIOScheduler,
  ) {}

  onApplicationBootstrap(): void {
    for (const { name, buffer, settings } of this.registry.all()) {
      buffer.start();
      if (settings.flushCron !== undefined) {
        this.scheduler.addCron(name, settings.flushCron, () => {
          buffer.flush().catch((error: unknown) => {
            const err = asError(error);
            this.logger.error(
              `buffer "${name}": scheduled flush failed: ${err.message}`,
              err.stack,
            );
          });
        });
      }
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.scheduler.removeCrons();
    // In parallel: the longest shutdownTimeout bounds the whole shutdown, not their sum.
    await Promise.all(
      this.registry.all().map(async ({ name, buffer, settings }) => {
        try {
          await buffer.stop({ timeout: settings.shutdownTimeout });
        } catch (error) {
          const err = asError(error);
          this.logger.error(`buffer "${name}": stop failed: ${err.message}`, err.stack);
        }
      }),
    );
  }
}
