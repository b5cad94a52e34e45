export { FileStorage } from './file-storage.js';
export type { Durability, FileStorageOptions } from './file-storage-options.js';
export type {
  DamageReason,
  IgnoredFile,
  JournalDamage,
  RecoveryReport,
} from './recovery-report.js';
export { jsonSerializer, type Serializer } from '../serializer.js';
export type { DurableStorageOptions, StorageErrorHandler } from '../storage-options.js';
