import { Logger } from '@nestjs/common';
import { BufIO } from '../core/bufio.js';
import type { Storage } from '../core/storage.js';
import { resolveBufferOptions } from './bufio-options.js';
import { BUFIO_LOGGER_CONTEXT } from './bufio.constants.js';
import { logBufferEvents } from './bufio.logging.js';
import type { BufIORegistry } from './bufio.registry.js';
import type { BufIOScheduler } from './bufio.scheduler.js';
import type { BufIOModuleOptions } from './interfaces/bufio-module-options.interface.js';

/**
 * Creates the buffer a `forFeature` provider stands for, from its options over the defaults, and
 * registers it. Runs while Nest instantiates providers, so that a wrong option fails the boot.
 */
export function createBuffer(
  registry: BufIORegistry,
  scheduler: BufIOScheduler,
  defaults: BufIOModuleOptions | undefined,
  raw: unknown,
): BufIO<unknown, unknown> {
  const { name, engine, storage, settings } = resolveBufferOptions<unknown, unknown>(
    defaults ?? {},
    raw,
  );
  registry.assertFree(name);
  const store: Storage<unknown> | undefined =
    typeof storage === 'function' ? storage(name) : storage;
  let buffer: BufIO<unknown, unknown>;
  try {
    buffer = new BufIO<unknown, unknown>({
      ...engine,
      storage: store,
      timers: engine.timers ?? scheduler.timersFor(name),
    });
  } catch (error) {
    if (store && typeof storage === 'function') void Promise.resolve(store.close()).catch(() => {});
    throw error;
  }
  registry.add({
    name,
    buffer,
    settings,
    workerSource:
      engine.worker === undefined ? undefined : `the "worker" option of buffer "${name}"`,
  });
  logBufferEvents(buffer, new Logger(BUFIO_LOGGER_CONTEXT));
  return buffer;
}
