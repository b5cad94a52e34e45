export type {
  BufferLifecycleOptions,
  BufIOModuleAsyncOptions,
  BufIOModuleOptions,
  BufIOOptionsFactory,
  StorageFactory,
} from './bufio-module-options.interface.js';
export type {
  BufferOptions,
  BufferOptionsFactory,
  RegisterBufferAsyncOptions,
  RegisterBufferOptions,
} from './register-buffer-options.interface.js';
export type { BufferWorkerHandler } from './buffer-worker-handler.interface.js';
export type { BufferEventName, BufferEventPayload } from './buffer-event.interface.js';
export type { AsyncOptions } from './async-options.interface.js';
export type {
  BufIOMetricsModuleAsyncOptions,
  BufIOMetricsOptionsFactory,
} from './bufio-metrics-module-options.interface.js';
