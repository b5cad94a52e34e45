export { BufIO } from './core/bufio.js';
export type { BufIOState, BufIOStats, PushOptions, StopOptions } from './core/bufio.js';
export type {
  BufIOOptions,
  CoalesceOptions,
  DeadLetterHandler,
  FlushTimers,
  PriorityOptions,
  OnFullPolicy,
  RetryOptions,
} from './core/options.js';
export type { BufIOEvents, DrainSummary } from './core/events.js';
export type { Worker, WorkContext, WorkFunction, WorkOutput, WorkResult } from './core/worker.js';
export type { Instrumentation, WorkCall, WorkReport } from './core/instrumentation.js';
export type {
  AppendOptions,
  Awaitable,
  MergeFunction,
  RecordId,
  ReserveOptions,
  Storage,
  StorageFeatures,
  StoredRecord,
  UnreadableRecord,
} from './core/storage.js';
export {
  BufferFullError,
  BufIOClosedError,
  BufIOError,
  type BufIOErrorCode,
  CrashLoopError,
  DeadLetterError,
  DrainTimeoutError,
  InvalidOptionsError,
  InvalidRecordError,
  NoWorkerError,
  RecordDroppedError,
  RecordTooLargeError,
  SerializationError,
  StorageAccessError,
  StorageError,
  StorageFullError,
  StorageLockedError,
  StorageUnavailableError,
  UnreadableRecordError,
  UnsafeDirectoryError,
  UnsupportedError,
  WorkerError,
  WorkTimeoutError,
} from './core/errors.js';
export { MemoryStorage, type MemoryStorageOptions } from './storages/memory-storage.js';
