export { BufferWorker, type BufferWorkerMetadata } from './buffer-worker.decorator.js';
export { InjectBuffer } from './inject-buffer.decorator.js';
export { OnBufferEvent, type BufferEventMetadata } from './on-buffer-event.decorator.js';
