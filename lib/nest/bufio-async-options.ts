import type { Provider } from '@nestjs/common';
import { InvalidOptionsError } from '../core/errors.js';
import type { AsyncOptions } from './interfaces/async-options.interface.js';

/**
 * The providers that put the options of an `...Async()` registration under `token`: from
 * `useFactory`, or from `create(instance)` of its `useClass` or `useExisting` provider.
 *
 * @throws InvalidOptionsError naming `context` when none of the three is given.
 */
export function asyncOptionsProviders<R, F>(
  token: string,
  options: AsyncOptions<R, F>,
  create: (factory: F) => R | Promise<R>,
  context: string,
): Provider[] {
  if (options.useFactory) {
    const factory = options.useFactory;
    return [
      {
        provide: token,
        useFactory: (...args: unknown[]) => factory(...(args as never[])),
        inject: options.inject ?? [],
      },
    ];
  }
  const source = options.useClass ?? options.useExisting;
  if (!source) {
    throw new InvalidOptionsError(
      'useFactory',
      undefined,
      'one of useFactory, useClass or useExisting',
      context,
    );
  }
  const providers: Provider[] = [
    { provide: token, useFactory: (factory: F) => create(factory), inject: [source] },
  ];
  if (options.useClass) providers.push({ provide: options.useClass, useClass: options.useClass });
  return providers;
}
