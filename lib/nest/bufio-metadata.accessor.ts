import { Injectable } from '@nestjs/common';
import { BUFIO_ON_EVENT_METADATA, BUFIO_WORKER_METADATA } from './bufio.constants.js';
import type { BufferWorkerMetadata } from './decorators/buffer-worker.decorator.js';
import type { BufferEventMetadata } from './decorators/on-buffer-event.decorator.js';

/** Reads what the BufIO decorators recorded. */
@Injectable()
export class BufIOMetadataAccessor {
  /** The `@BufferWorker` metadata of a class, if it has any. */
  getWorker(target: object): BufferWorkerMetadata | undefined {
    return Reflect.getMetadata(BUFIO_WORKER_METADATA, target) as BufferWorkerMetadata | undefined;
  }

  /** The `@OnBufferEvent` subscriptions of a method, empty if none. */
  getEvents(method: object): readonly BufferEventMetadata[] {
    return (Reflect.getMetadata(BUFIO_ON_EVENT_METADATA, method) ?? []) as BufferEventMetadata[];
  }
}
