export { BufIOModule } from './bufio.module.js';
export { BufIOMetricsModule } from './bufio-metrics.module.js';
export { BufIOService } from './bufio.service.js';
export { BUFIO_MODULE_OPTIONS, getBufferToken } from './bufio.tokens.js';
export {
  DuplicateBufferError,
  DuplicateWorkerError,
  InvalidWorkerError,
  MissingWorkerError,
  UnknownBufferError,
} from './bufio.errors.js';
export * from './decorators/index.js';
export type * from './interfaces/index.js';
export type { BufIOMetricsOptions as BufIOMetricsModuleOptions } from '../metrics/index.js';
