import type { BufIOEvents } from '../../core/events.js';

/** The events a buffer emits, for `@OnBufferEvent(name, event)`. */
export type BufferEventName = keyof BufIOEvents<unknown>;

/** The payload an `@OnBufferEvent(name, event)` method receives, for records of type `T`. */
export type BufferEventPayload<E extends BufferEventName, T = unknown, U = unknown> = BufIOEvents<
  T,
  U
>[E];
