import type { INestApplication, LoggerService, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

/** How to build the sample application. */
export interface SampleAppOptions {
  /** Nest's logger, or the levels it prints. Default: errors, warnings and logs. */
  logger?: LoggerService | LogLevel[] | false;
  /** Run the shutdown hooks (and so BufIO's drain) on SIGTERM/SIGINT. Default true. */
  shutdownHooks?: boolean;
}

/**
 * Creates the sample application, not yet listening. `enableShutdownHooks()` is what makes a
 * SIGTERM drain the buffers: without it, Nest runs no shutdown hook on a signal.
 */
export async function createSampleApp(options: SampleAppOptions = {}): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule, {
    logger: options.logger ?? ['error', 'warn', 'log'],
    // Throw boot errors (an invalid BUFIO_BATCH_SIZE, ...) to the caller instead of aborting.
    abortOnError: false,
  });
  if (options.shutdownHooks ?? true) app.enableShutdownHooks();
  return app;
}
