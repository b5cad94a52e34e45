import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { InvalidOptionsError } from '../core/errors.js';
import { asyncOptionsProviders } from './bufio-async-options.js';
import { createBuffer } from './bufio-buffer.factory.js';
import { BufIOCoreModule } from './bufio-core.module.js';
import { resolveModuleOptions } from './bufio-options.js';
import { DuplicateBufferError } from './bufio.errors.js';
import { BufIORegistry } from './bufio.registry.js';
import { BufIOScheduler } from './bufio.scheduler.js';
import {
  BUFIO_MODULE_OPTIONS,
  BUFIO_RAW_MODULE_OPTIONS,
  getBufferOptionsToken,
  getBufferToken,
} from './bufio.tokens.js';
import type {
  BufIOModuleAsyncOptions,
  BufIOModuleOptions,
  BufIOOptionsFactory,
} from './interfaces/bufio-module-options.interface.js';
import type {
  BufferOptions,
  BufferOptionsFactory,
  RegisterBufferAsyncOptions,
  RegisterBufferOptions,
} from './interfaces/register-buffer-options.interface.js';

/**
 * The NestJS module of BufIO.
 *
 * - `forRoot(defaults)` / `forRootAsync(...)`: defaults shared by every buffer, once, in the root
 *   module (global).
 * - `forFeature(...buffers)` / `forFeatureAsync(...)`: named buffers, each injectable with
 *   `@InjectBuffer(name)` in the importing module, processed by its `@BufferWorker(name)` class.
 *
 * However many times these are imported, one registry, one explorer and one lifecycle owner run
 * (the shared `BufIOCoreModule`).
 *
 * @example
 * imports: [
 *   BufIOModule.forRoot({ batchSize: 100, flushInterval: 5000 }),
 *   BufIOModule.forFeature({ name: 'events', batchSize: 500 }),
 * ]
 */
@Module({})
export class BufIOModule {
  /** Registers the defaults every buffer shares; each buffer may override any of them. */
  static forRoot(options: BufIOModuleOptions = {}): DynamicModule {
    return {
      module: BufIOModule,
      global: true,
      imports: [BufIOCoreModule],
      providers: [
        { provide: BUFIO_MODULE_OPTIONS, useFactory: () => resolveModuleOptions(options) },
      ],
      exports: [BUFIO_MODULE_OPTIONS],
    };
  }

  /**
   * Registers the defaults from a factory, a class or an existing provider, typically reading
   * `ConfigService`. Numeric options may come as numeric strings (environment variables).
   */
  static forRootAsync(options: BufIOModuleAsyncOptions): DynamicModule {
    const raw = asyncOptionsProviders<BufIOModuleOptions, BufIOOptionsFactory>(
      BUFIO_RAW_MODULE_OPTIONS,
      options,
      (factory) => factory.createBufIOOptions(),
      'BufIOModule.forRootAsync()',
    );
    return {
      module: BufIOModule,
      global: true,
      imports: [BufIOCoreModule, ...(options.imports ?? [])],
      providers: [
        ...raw,
        ...(options.extraProviders ?? []),
        {
          provide: BUFIO_MODULE_OPTIONS,
          useFactory: (value: unknown) => resolveModuleOptions(value),
          inject: [BUFIO_RAW_MODULE_OPTIONS],
        },
      ],
      exports: [BUFIO_MODULE_OPTIONS],
    };
  }

  /**
   * Registers named buffers, each injectable in the importing module with `@InjectBuffer(name)`
   * (or `getBufferToken(name)`) and exported from it. A name may be registered once per
   * application: to use a buffer in another module, import the module that registered it, or
   * use `BufIOService.get(name)`.
   *
   * @throws DuplicateBufferError when two of `buffers` have the same name.
   */
  static forFeature<T = unknown, U = unknown>(
    ...buffers: RegisterBufferOptions<T, U>[]
  ): DynamicModule {
    checkNames(buffers.map((b) => (b as { name?: unknown } | null)?.name));
    const providers: Provider[] = buffers.map((options) => ({
      provide: getBufferToken(options.name),
      useFactory: (
        registry: BufIORegistry,
        scheduler: BufIOScheduler,
        defaults: BufIOModuleOptions | undefined,
      ) => createBuffer(registry, scheduler, defaults, options),
      inject: [BufIORegistry, BufIOScheduler, { token: BUFIO_MODULE_OPTIONS, optional: true }],
    }));
    return {
      module: BufIOModule,
      imports: [BufIOCoreModule],
      providers,
      exports: providers.map((p) => (p as { provide: string }).provide),
    };
  }

  /**
   * Registers named buffers whose options come from a factory, a class or an existing provider
   * (typically reading `ConfigService`); otherwise like `forFeature`.
   *
   * @throws DuplicateBufferError when two of `buffers` have the same name.
   */
  static forFeatureAsync<T = unknown, U = unknown>(
    ...buffers: RegisterBufferAsyncOptions<T, U>[]
  ): DynamicModule {
    checkNames(buffers.map((b) => (b as { name?: unknown } | null)?.name));
    const providers: Provider[] = [];
    const exported: string[] = [];
    for (const options of buffers) {
      const name = options.name;
      providers.push(
        ...asyncOptionsProviders<BufferOptions<T, U>, BufferOptionsFactory<T, U>>(
          getBufferOptionsToken(name),
          options,
          (factory) => factory.createBufferOptions(name),
          `BufIOModule.forFeatureAsync() for buffer "${name}"`,
        ),
        ...(options.extraProviders ?? []),
        {
          provide: getBufferToken(name),
          useFactory: (
            registry: BufIORegistry,
            scheduler: BufIOScheduler,
            defaults: BufIOModuleOptions | undefined,
            own: BufferOptions<T, U> | undefined,
          ) => createBuffer(registry, scheduler, defaults, { ...asOptions(own), name }),
          inject: [
            BufIORegistry,
            BufIOScheduler,
            { token: BUFIO_MODULE_OPTIONS, optional: true },
            getBufferOptionsToken(name),
          ],
        },
      );
      exported.push(getBufferToken(name));
    }
    return {
      module: BufIOModule,
      imports: [BufIOCoreModule, ...buffers.flatMap((b) => b.imports ?? [])],
      providers,
      exports: exported,
    };
  }
}

/** A factory's result, refused early when it is not an object, so the message says where. */
function asOptions(own: unknown): object {
  if (own === undefined || own === null) return {};
  if (typeof own !== 'object' || Array.isArray(own)) {
    throw new InvalidOptionsError('options', own, 'an object', 'BufIOModule.forFeatureAsync()');
  }
  return own;
}

function checkNames(names: readonly unknown[]): void {
  if (names.length === 0) {
    throw new InvalidOptionsError(
      'buffers',
      names,
      'at least one buffer',
      'BufIOModule.forFeature()',
    );
  }
  const seen = new Set<unknown>();
  for (const name of names) {
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidOptionsError('name', name, 'a non-empty string', 'BufIOModule.forFeature()');
    }
    if (seen.has(name)) {
      throw new DuplicateBufferError(name, 'it appears twice in one BufIOModule.forFeature() call');
    }
    seen.add(name);
  }
}
