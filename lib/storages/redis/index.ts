export { RedisStorage, type RedisStorageKeys } from './redis-storage.js';
export type { OnUnavailablePolicy, RedisStorageOptions } from './redis-storage-options.js';
export { jsonSerializer, type Serializer } from './serializer.js';
