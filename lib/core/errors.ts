import { types } from 'node:util';
import type { UnreadableRecord } from './storage.js';

/**
 * Every error BufIO throws, rejects with or reports carries a stable `code`, so callers can branch
 * on `err.code` rather than on message text, which may be reworded.
 */
export type BufIOErrorCode =
  | 'BUFIO_INVALID_OPTIONS'
  | 'BUFIO_INVALID_RECORD'
  | 'BUFIO_CLOSED'
  | 'BUFIO_BUFFER_FULL'
  | 'BUFIO_RECORD_DROPPED'
  | 'BUFIO_WORK_TIMEOUT'
  | 'BUFIO_WORKER_FAILED'
  | 'BUFIO_NO_WORKER'
  | 'BUFIO_DRAIN_TIMEOUT'
  | 'BUFIO_UNSUPPORTED'
  | 'BUFIO_STORAGE_UNAVAILABLE'
  | 'BUFIO_STORAGE_FAILED'
  | 'BUFIO_SERIALIZATION'
  | 'BUFIO_RECORD_TOO_LARGE'
  | 'BUFIO_STORAGE_LOCKED'
  | 'BUFIO_STORAGE_FULL'
  | 'BUFIO_STORAGE_ACCESS'
  | 'BUFIO_UNSAFE_DIRECTORY'
  | 'BUFIO_UNREADABLE_RECORD'
  | 'BUFIO_CRASH_LOOP'
  | 'BUFIO_DEAD_LETTER_FAILED'
  | 'BUFIO_DUPLICATE_BUFFER'
  | 'BUFIO_DUPLICATE_WORKER'
  | 'BUFIO_UNKNOWN_BUFFER'
  | 'BUFIO_INVALID_WORKER';

/** Base class of every BufIO error. */
export class BufIOError extends Error {
  /** Stable identifier of the kind of failure. */
  readonly code: BufIOErrorCode;

  constructor(code: BufIOErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An option is missing, of the wrong type or out of range. Thrown at construction or boot. */
export class InvalidOptionsError extends BufIOError {
  /** The option at fault, as a path (`retry.maxAttempts`). */
  readonly option: string;
  /** The value that was given. */
  readonly value: unknown;

  constructor(option: string, value: unknown, expected: string, context?: string) {
    const where = context ? `${context}: ` : '';
    super(
      'BUFIO_INVALID_OPTIONS',
      `${where}invalid option "${option}": got ${describeValue(value)}, expected ${expected}`,
    );
    this.option = option;
    this.value = value;
  }
}

/** `push` was given something that cannot be a record (`undefined`, an empty array, ...). */
export class InvalidRecordError extends BufIOError {
  constructor(message: string) {
    super('BUFIO_INVALID_RECORD', message);
  }
}

/** The buffer has been stopped and no longer accepts records. */
export class BufIOClosedError extends BufIOError {
  constructor(name: string) {
    super('BUFIO_CLOSED', `buffer "${name}" is stopped and no longer accepts records`);
  }
}

/** `onFull: 'error'` and the buffer holds `maxBufferedRecords` records. */
export class BufferFullError extends BufIOError {
  constructor(name: string, limit: number) {
    super('BUFIO_BUFFER_FULL', `buffer "${name}" is full (maxBufferedRecords: ${limit})`);
  }
}

/** The record was removed by a dropping `onFull` policy before it was processed. */
export class RecordDroppedError extends BufIOError {
  constructor(name: string, policy: string) {
    super('BUFIO_RECORD_DROPPED', `record dropped by buffer "${name}" (onFull: '${policy}')`);
  }
}

/** A worker call ran longer than `workTimeout`. */
export class WorkTimeoutError extends BufIOError {
  constructor(timeout: number) {
    super('BUFIO_WORK_TIMEOUT', `worker did not settle within workTimeout (${timeout} ms)`);
  }
}

/** Wraps a non-`Error` value thrown or returned by a worker, so every failure is an `Error`. */
export class WorkerError extends BufIOError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BUFIO_WORKER_FAILED', message, options);
  }
}

/** The buffer was started or flushed before a worker was attached. */
export class NoWorkerError extends BufIOError {
  constructor(name: string) {
    super('BUFIO_NO_WORKER', `buffer "${name}" has no worker: pass "worker" or call setWorker()`);
  }
}

/** Given to `deadLetter` for records that a `stop()` could not process before its timeout. */
export class DrainTimeoutError extends BufIOError {
  constructor(name: string, timeout: number) {
    super('BUFIO_DRAIN_TIMEOUT', `buffer "${name}" did not drain within ${timeout} ms`);
  }
}

/** The storage or the call does not support the requested feature. */
export class UnsupportedError extends BufIOError {
  constructor(message: string) {
    super('BUFIO_UNSUPPORTED', message);
  }
}

/** `UnsupportedError` for an engine option that the buffer's storage does not support. */
export function unsupportedOption(
  buffer: string,
  option: string,
  storage: object,
): UnsupportedError {
  const name = storage.constructor?.name ?? 'the storage';
  return new UnsupportedError(
    `buffer "${buffer}": option "${option}" needs a storage that supports it, and ${name} does not (MemoryStorage does)`,
  );
}

/** The storage's backing service cannot be reached. Appends may be retried by the caller. */
export class StorageUnavailableError extends BufIOError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BUFIO_STORAGE_UNAVAILABLE', message, options);
  }
}

/** A storage operation failed for a reason other than unavailability. */
export class StorageError extends BufIOError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BUFIO_STORAGE_FAILED', message, options);
  }
}

/** A record could not be serialized (or a stored one deserialized). Nothing was written. */
export class SerializationError extends BufIOError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BUFIO_SERIALIZATION', message, options);
  }
}

/** A serialized record is larger than the storage's `maxRecordBytes`. Nothing was written. */
export class RecordTooLargeError extends BufIOError {
  constructor(bytes: number, limit: number) {
    super('BUFIO_RECORD_TOO_LARGE', `record is ${bytes} bytes, over maxRecordBytes (${limit})`);
  }
}

/** Another process holds the storage's lock (a `FileStorage` directory opened twice). */
export class StorageLockedError extends BufIOError {
  constructor(message: string) {
    super('BUFIO_STORAGE_LOCKED', message);
  }
}

/**
 * The storage's disk (or quota) is full: nothing of the call was stored. The storage accepts
 * records again once space is freed.
 */
export class StorageFullError extends BufIOError {
  /** The file or directory the write was for. */
  readonly path: string;

  constructor(message: string, path: string, options?: { cause?: unknown }) {
    super('BUFIO_STORAGE_FULL', message, options);
    this.path = path;
  }
}

/**
 * The operating system refused the storage access to a file or directory (`EACCES`, `EPERM`,
 * `EROFS`); the OS error is the `cause`.
 */
export class StorageAccessError extends BufIOError {
  /** The file or directory access was refused to. */
  readonly path: string;

  constructor(message: string, path: string, options?: { cause?: unknown }) {
    super('BUFIO_STORAGE_ACCESS', message, options);
    this.path = path;
  }
}

/**
 * A storage directory that others could write into (group- or world-writable, or owned by another
 * user): they could plant files the storage would replay or write through. Refused unless the
 * storage's options explicitly accept it.
 */
export class UnsafeDirectoryError extends BufIOError {
  readonly path: string;
  /** The directory's permission bits, e.g. `0o777`. */
  readonly mode: number;
  /** The directory owner's uid. */
  readonly owner: number;

  constructor(message: string, path: string, mode: number, owner: number) {
    super('BUFIO_UNSAFE_DIRECTORY', message);
    this.path = path;
    this.mode = mode;
    this.owner = owner;
  }
}

/**
 * Stored records that could not be read back (damaged bytes, or a payload the serializer refuses).
 * The storage set them aside where `records[i].location` says; the rest of the buffer works on.
 */
export class UnreadableRecordError extends BufIOError {
  readonly records: readonly UnreadableRecord[];

  constructor(name: string, records: readonly UnreadableRecord[]) {
    const where = [...new Set(records.map((r) => r.location))].join(', ');
    super(
      'BUFIO_UNREADABLE_RECORD',
      `buffer "${name}": ${records.length} stored record(s) could not be read back and were set aside (${where})`,
      { cause: records[0]?.cause },
    );
    this.records = records;
  }
}

/**
 * Given to `deadLetter` for a record whose deliveries kept ending without an ack or a release:
 * each time, the process holding it died (or its lease lapsed) while the worker had it. It is
 * dead-lettered rather than redelivered for ever.
 */
export class CrashLoopError extends BufIOError {
  /** How many deliveries ended without an ack or a release. */
  readonly crashes: number;

  constructor(name: string, crashes: number) {
    super(
      'BUFIO_CRASH_LOOP',
      `buffer "${name}": record was delivered ${crashes} time(s) without its worker call ever finishing (the process died or the lease lapsed each time)`,
    );
    this.crashes = crashes;
  }
}

/** The `deadLetter` handler itself failed; the records it was given are attached. */
export class DeadLetterError<T = unknown> extends BufIOError {
  readonly records: readonly T[];

  constructor(records: readonly T[], cause: unknown) {
    super('BUFIO_DEAD_LETTER_FAILED', `deadLetter handler failed for ${records.length} record(s)`, {
      cause,
    });
    this.records = records;
  }
}

/**
 * Whether a value is an `Error`, from this realm or another: a native driver or a `vm` context
 * (Jest's) may throw errors whose class is another realm's `Error`.
 */
export function isError(value: unknown): value is Error {
  if (value instanceof Error || types.isNativeError(value)) return true;
  if (value === null || typeof value !== 'object') return false;
  // An error class of another realm whose instances are not native errors (built with
  // Error.call(this), as better-sqlite3's SqliteError is): its chain reaches an Error.prototype.
  for (
    let proto: unknown = Object.getPrototypeOf(value);
    proto;
    proto = Object.getPrototypeOf(proto)
  ) {
    const ctor = Object.hasOwn(proto, 'constructor')
      ? (proto as { constructor: unknown }).constructor
      : undefined;
    if (typeof ctor === 'function' && ctor.name === 'Error' && ctor.prototype === proto)
      return true;
  }
  return false;
}

/**
 * Turns what a storage, a hook, a listener or a handler threw into an `Error`: an `Error` (of any
 * realm) as it is, anything else wrapped, the original kept as `cause`. Worker results go through
 * `toError` instead, which says the worker failed.
 */
export function asError(value: unknown): Error {
  if (isError(value)) return value;
  const text =
    typeof value === 'string' ? value : `non-Error value thrown: ${describeValue(value)}`;
  return new Error(text, { cause: value });
}

/**
 * Turns what a worker threw or failed a record with into an `Error`: a non-`Error` value becomes
 * a `WorkerError` (BUFIO_WORKER_FAILED), keeping the original as `cause`.
 */
export function toError(value: unknown): Error {
  if (isError(value)) return value;
  return new WorkerError(`worker failed with a non-Error value: ${describeValue(value)}`, {
    cause: value,
  });
}

/**
 * The error to report for a failed storage call: a BufIO error (the storage's own typed error) as
 * it is, anything else wrapped in a `StorageError` that names the buffer and the operation.
 */
export function storageFailure(buffer: string, operation: string, error: unknown): Error {
  if (isError(error) && String((error as { code?: unknown }).code).startsWith('BUFIO_')) {
    return error;
  }
  return new StorageError(`storage ${operation} failed for buffer "${buffer}"`, { cause: error });
}

/** A short, safe rendering of a value for an error message. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  try {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return 'an object';
  }
}
