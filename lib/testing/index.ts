export {
  describeStorageConformance,
  storageConformanceCases,
  type ConformanceCase,
  type ConformanceRecord,
  type StorageConformanceOptions,
  type TestApi,
} from './storage-conformance.js';
