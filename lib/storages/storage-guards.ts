import { asError, StorageError } from '../core/errors.js';
import type { StorageErrorHandler } from './storage-options.js';

/**
 * What a closed storage throws for an operation (`assertOpen` in each storage): the storage, as it
 * names itself (`RedisStorage "events"`), and the operation refused.
 */
export function closedError(storage: string, operation: string): StorageError {
  return new StorageError(`${storage} is closed: ${operation} refused`);
}

/**
 * Hands `error` to the user's `onError`. A handler that throws is ignored: reporting a failure
 * must never fail the call, timer or event that reports it.
 */
export function reportError(onError: StorageErrorHandler, error: unknown): void {
  try {
    onError(asError(error));
  } catch {
    // A throwing onError must not turn a reported failure into an unhandled one.
  }
}
