import { InvalidOptionsError } from '../../core/errors.js';
import { BUFIO_ON_EVENT_METADATA } from '../bufio.constants.js';
import type { BufferEventName } from '../interfaces/buffer-event.interface.js';

/** What `@OnBufferEvent` records on the method; a method may listen to several events. */
export interface BufferEventMetadata {
  readonly buffer: string;
  readonly event: BufferEventName;
}

const EVENTS: readonly BufferEventName[] = [
  'flushed',
  'failed',
  'retrying',
  'dropped',
  'refused',
  'deadLettered',
  'drained',
  'error',
];

/**
 * Calls the decorated method with the payload of every `event` of buffer `name` (see
 * `BufferEventPayload`). Works on any singleton provider or controller, a worker or not. What the
 * method throws or rejects with is logged; it never reaches the buffer.
 *
 * @example
 * @OnBufferEvent('events', 'deadLettered')
 * onDeadLettered({ records, error }: BufferEventPayload<'deadLettered', EventDto>) { ... }
 *
 * @throws InvalidOptionsError when `name` is empty or `event` is not an event of a buffer.
 */
export function OnBufferEvent(name: string, event: BufferEventName): MethodDecorator {
  const context = '@OnBufferEvent()';
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidOptionsError('name', name, 'a non-empty string', context);
  }
  if (!EVENTS.includes(event)) {
    throw new InvalidOptionsError(
      'event',
      event,
      `one of ${EVENTS.map((e) => `'${e}'`).join(', ')}`,
      context,
    );
  }
  return (_target, _key, descriptor) => {
    const method: unknown = descriptor.value;
    if (typeof method !== 'function') return;
    const existing = (Reflect.getMetadata(BUFIO_ON_EVENT_METADATA, method) ??
      []) as BufferEventMetadata[];
    Reflect.defineMetadata(BUFIO_ON_EVENT_METADATA, [...existing, { buffer: name, event }], method);
  };
}
