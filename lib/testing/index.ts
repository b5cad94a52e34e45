export {
  describeStorageConformance,
  storageConformanceCases,
  type ConformanceCase,
  type ConformanceRecord,
  type StorageConformanceOptions,
  type TestApi,
} from './storage-conformance.js';
export { ManualTimers, manualTimers } from './manual-timers.js';
export { createTestBuffer } from './test-buffer.js';
export { drain, type DrainOptions } from './drain.js';
