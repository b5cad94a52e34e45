/** Injection token of the defaults given to `BufIOModule.forRoot()` / `forRootAsync()`. */
export const BUFIO_MODULE_OPTIONS = 'bufio:module-options';

/**
 * Injection token of the buffer registered as `name` by `BufIOModule.forFeature()`. Prefer
 * `@InjectBuffer(name)`; use this with `moduleRef.get()` or `Test.createTestingModule().overrideProvider()`.
 */
export function getBufferToken(name: string): string {
  return `bufio:buffer:${name}`;
}

/** Token of one buffer's own options, as `forFeatureAsync()` produces them (internal). */
export function getBufferOptionsToken(name: string): string {
  return `bufio:buffer-options:${name}`;
}

/** Token of the raw result of a `forRootAsync()` factory, before it is validated (internal). */
export const BUFIO_RAW_MODULE_OPTIONS = 'bufio:raw-module-options';
