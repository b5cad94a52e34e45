const ignore = (): void => undefined;

/**
 * Marks a promise BufIO returns as handled, so that a caller who does not await it (a
 * fire-and-forget `push` after `stop()`) never meets an unhandled rejection, which would end the
 * process. A caller who awaits it still gets the rejection: the no-op handler is one of two.
 */
export function handled<P extends Promise<unknown>>(promise: P): P {
  promise.catch(ignore);
  return promise;
}

/** A rejected promise that is already handled (see `handled`). */
export function rejected(error: unknown): Promise<never> {
  return handled(Promise.reject(error));
}
