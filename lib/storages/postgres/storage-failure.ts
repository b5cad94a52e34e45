import { BufIOError, StorageError, StorageUnavailableError } from '../../core/errors.js';

/** Socket-level failures: the server is down, restarting, or the network is. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs that mean "this connection or server cannot serve you now", not "your statement is
 * wrong". Class 08 is connection exceptions; 57P01-57P03 are shutdowns and startup (a terminated
 * backend gets 57P01); 53300 is too many connections.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * node-postgres reports a lost connection, a connect timeout and its client-side query timeout as
 * plain `Error`s with no code; their messages are the only mark.
 */
const DRIVER_MESSAGES = [
  'Connection terminated',
  'connection error and is not queryable',
  'timeout exceeded when trying to connect',
  'Query read timeout',
];

/**
 * Whether `error` means PostgreSQL cannot be reached, rather than that the statement failed.
 * Duck-typed: errors from Node's sockets may come from another realm (a VM context, a test
 * runner), where `instanceof Error` is false.
 */
export function isUnavailable(error: unknown, depth = 0): boolean {
  if (error === null || typeof error !== 'object' || depth > 5) return false;
  if (error instanceof StorageUnavailableError) return true;
  const { code, message, errors, cause } = error as {
    code?: unknown;
    message?: unknown;
    errors?: unknown;
    cause?: unknown;
  };
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08')) {
      return true;
    }
  }
  if (typeof message === 'string' && DRIVER_MESSAGES.some((text) => message.includes(text))) {
    return true;
  }
  // An AggregateError from a host name that resolves to several addresses, all refused.
  if (Array.isArray(errors) && errors.some((e) => isUnavailable(e, depth + 1))) return true;
  return cause !== error && isUnavailable(cause, depth + 1);
}

/**
 * Wraps a driver error in the BufIO error that says what failed and whether retrying later may
 * help: `StorageUnavailableError` for an unreachable server, `StorageError` otherwise. BufIO errors
 * pass through unchanged.
 */
export function storageFailure(operation: string, table: string, error: unknown): BufIOError {
  if (error instanceof BufIOError) return error;
  const detail = describeDriverError(error);
  if (isUnavailable(error)) {
    return new StorageUnavailableError(
      `PostgreSQL is unavailable: ${operation} on ${table} failed (${detail})`,
      { cause: error },
    );
  }
  if ((error as { code?: unknown } | null)?.code === '42P01') {
    // The table itself, or one the storage keeps beside it (a table made by hand, or by 0.2).
    const missing = /relation "([^"]+)" does not exist/.exec(detail)?.[1];
    const own = missing === undefined || table.endsWith(`"${missing.split('.').pop() ?? ''}"`);
    const name = own ? table : `"${missing}"`;
    return new StorageError(
      `PostgreSQL ${operation} failed: table ${name} does not exist; create it with migrate() or the createTable option (${detail})`,
      { cause: error },
    );
  }
  return new StorageError(`PostgreSQL ${operation} on ${table} failed (${detail})`, {
    cause: error,
  });
}

/** What an error says, whatever realm it comes from, with its code when the message lacks it. */
export function describeDriverError(error: unknown): string {
  if (error === null || typeof error !== 'object') return String(error);
  const { code, message, errors } = error as {
    code?: unknown;
    message?: unknown;
    errors?: unknown;
  };
  let text = typeof message === 'string' && message !== '' ? message : String(error);
  // An AggregateError's own message is empty; its first error says what happened.
  if (
    (typeof message !== 'string' || message === '') &&
    Array.isArray(errors) &&
    errors.length > 0
  ) {
    text = describeDriverError(errors[0]);
  }
  return typeof code === 'string' && !text.includes(code) ? `${code}: ${text}` : text;
}
