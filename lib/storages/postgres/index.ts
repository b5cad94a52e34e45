export { PostgresStorage, UNDECODABLE_HOLDER } from './postgres-storage.js';
export type { OnUnavailablePolicy, PostgresStorageOptions } from './postgres-storage-options.js';
export { jsonSerializer, type Serializer } from './serializer.js';
