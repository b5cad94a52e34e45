export { PostgresStorage } from './postgres-storage.js';
export type { PostgresStorageOptions } from './postgres-storage-options.js';
export { jsonSerializer, type Serializer } from '../serializer.js';
export type {
  DurableStorageOptions,
  OnUnavailablePolicy,
  SharedStorageOptions,
  StorageErrorHandler,
} from '../storage-options.js';
