export { RedisStorage, type RedisStorageKeys } from './redis-storage.js';
export type { RedisStorageOptions } from './redis-storage-options.js';
export { jsonSerializer, type Serializer } from '../serializer.js';
export type {
  DurableStorageOptions,
  OnUnavailablePolicy,
  SharedStorageOptions,
  StorageErrorHandler,
} from '../storage-options.js';
