/** Injection token of the defaults given to `BufIOModule.forRoot()` / `forRootAsync()`. */
export const BUFIO_MODULE_OPTIONS = 'bufio:module-options';

const BUFFER_TOKEN_PREFIX = 'bufio:buffer:';

/**
 * Injection token of the buffer registered as `name` by `BufIOModule.forFeature()`. Prefer
 * `@InjectBuffer(name)`; use this with `moduleRef.get()` or `Test.createTestingModule().overrideProvider()`.
 */
export function getBufferToken(name: string): string {
  return `${BUFFER_TOKEN_PREFIX}${name}`;
}

/** The buffer name of a `getBufferToken(name)` token; undefined for any other token (internal). */
export function bufferNameOfToken(token: unknown): string | undefined {
  if (typeof token !== 'string' || !token.startsWith(BUFFER_TOKEN_PREFIX)) return undefined;
  const name = token.slice(BUFFER_TOKEN_PREFIX.length);
  return name.length > 0 ? name : undefined;
}

/** Token of one buffer's own options, as `forFeatureAsync()` produces them (internal). */
export function getBufferOptionsToken(name: string): string {
  return `bufio:buffer-options:${name}`;
}

/** Token of the raw result of a `forRootAsync()` factory, before it is validated (internal). */
export const BUFIO_RAW_MODULE_OPTIONS = 'bufio:raw-module-options';

/** Injection token of the options given to `BufIOMetricsModule.forRoot()` (internal). */
export const BUFIO_METRICS_OPTIONS = 'bufio:metrics-options';
