export { BufIO } from './core/bufio.js';
export type { BufIOState, BufIOStats, PushOptions, StopOptions } from './core/bufio.js';
export type {
  BufIOOptions,
  DeadLetterHandler,
  FlushTimers,
  OnFullPolicy,
  RetryOptions,
} from './core/options.js';
export type { BufIOEvents, DrainSummary } from './core/events.js';
export type { Worker, WorkContext, WorkFunction } from './core/worker.js';
export type {
  AppendOptions,
  Awaitable,
  MergeFunction,
  RecordId,
  ReserveOptions,
  Storage,
  StorageFeatures,
  StoredRecord,
} from './core/storage.js';
export * from './core/errors.js';
export { MemoryStorage, type MemoryStorageOptions } from './storages/memory-storage.js';
