import type {
  InjectionToken,
  ModuleMetadata,
  OptionalFactoryDependency,
  Provider,
  Type,
} from '@nestjs/common';

/**
 * How an `...Async()` registration obtains its options `R`: from a factory, from a class `F` the
 * module instantiates, or from an existing provider `F`. Exactly one of `useFactory`, `useClass`
 * and `useExisting` is required.
 */
export interface AsyncOptions<R, F> extends Pick<ModuleMetadata, 'imports'> {
  /** Returns the options; receives the providers listed in `inject`. */
  useFactory?: (...args: never[]) => R | Promise<R>;
  /** Providers passed to `useFactory`. */
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  /** A class, instantiated by the module, that builds the options. */
  useClass?: Type<F>;
  /** An existing provider that builds the options. */
  useExisting?: Type<F>;
  /** More providers for the factory's module. */
  extraProviders?: Provider[];
}
