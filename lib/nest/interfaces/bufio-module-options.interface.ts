import type { BufIOOptions } from '../../core/options.js';
import type { Storage } from '../../core/storage.js';
import type { AsyncOptions } from './async-options.interface.js';

/** Creates the storage of one buffer, given the buffer's name: each buffer needs its own. */
export type StorageFactory<T = unknown> = (bufferName: string) => Storage<T>;

/** Options the NestJS module adds to the engine's, per buffer or as defaults. */
export interface BufferLifecycleOptions {
  /**
   * How long each buffer may drain at application shutdown (`beforeApplicationShutdown`), in ms.
   * Default 10000. What is left then is dead-lettered (or kept, with a durable storage).
   */
  shutdownTimeout?: number;
  /**
   * A cron expression (`'0 * * * * *'`: every minute on the minute) at which the buffer is
   * flushed, on top of its size and interval triggers. Needs `@nestjs/schedule` with
   * `ScheduleModule.forRoot()` imported.
   */
  flushCron?: string;
}

/**
 * Defaults shared by every buffer (`BufIOModule.forRoot()`); each buffer may override any of them.
 *
 * Numeric options also accept numeric strings (`"50"`), as configuration read from environment
 * variables gives them; anything else is refused at boot with `InvalidOptionsError`.
 */
export interface BufIOModuleOptions
  extends Omit<BufIOOptions<unknown>, 'name' | 'worker' | 'storage'>, BufferLifecycleOptions {
  /** Creates each buffer's storage. Default: a `MemoryStorage` per buffer. */
  storage?: StorageFactory;
}

/** Builds the `forRoot` defaults in a class (`forRootAsync({ useClass })`). */
export interface BufIOOptionsFactory {
  createBufIOOptions(): BufIOModuleOptions | Promise<BufIOModuleOptions>;
}

/** How `BufIOModule.forRootAsync()` obtains its defaults (`createBufIOOptions()` for a class). */
export type BufIOModuleAsyncOptions = AsyncOptions<BufIOModuleOptions, BufIOOptionsFactory>;
