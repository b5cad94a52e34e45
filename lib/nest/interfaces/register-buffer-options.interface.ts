import type { BufIOOptions } from '../../core/options.js';
import type { Storage } from '../../core/storage.js';
import type { AsyncOptions } from './async-options.interface.js';
import type { BufferLifecycleOptions, StorageFactory } from './bufio-module-options.interface.js';

/**
 * One buffer's options (`BufIOModule.forFeature()`): its name, and anything that overrides the
 * `forRoot` defaults. Numeric options also accept numeric strings (`"50"`).
 */
export interface RegisterBufferOptions<T = unknown, U = unknown>
  extends Omit<BufIOOptions<T, U>, 'name' | 'storage'>, BufferLifecycleOptions {
  /** The buffer's name: `@InjectBuffer(name)`, `@BufferWorker(name)`, `BufIOService.get(name)`. */
  name: string;
  /** Where records wait: a storage instance for this buffer alone, or a factory. */
  storage?: Storage<T> | StorageFactory<T>;
}

/** A buffer's options without its name: what an async factory returns. */
export type BufferOptions<T = unknown, U = unknown> = Omit<RegisterBufferOptions<T, U>, 'name'>;

/** Builds one buffer's options in a class (`forFeatureAsync({ name, useClass })`). */
export interface BufferOptionsFactory<T = unknown, U = unknown> {
  createBufferOptions(name: string): BufferOptions<T, U> | Promise<BufferOptions<T, U>>;
}

/**
 * How `BufIOModule.forFeatureAsync()` obtains one buffer's options (`createBufferOptions(name)`
 * for a class).
 */
export interface RegisterBufferAsyncOptions<T = unknown, U = unknown> extends AsyncOptions<
  BufferOptions<T, U>,
  BufferOptionsFactory<T, U>
> {
  /** The buffer's name; known up front, as it makes the injection token. */
  name: string;
}
