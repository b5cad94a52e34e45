import { SetMetadata } from '@nestjs/common';
import { InvalidOptionsError } from '../../core/errors.js';
import { BUFIO_WORKER_METADATA } from '../bufio.constants.js';

/** What `@BufferWorker` records on the class. */
export interface BufferWorkerMetadata {
  /** The buffer the class works for. */
  readonly buffer: string;
}

/**
 * Marks a provider class as the worker of buffer `name`: its `work(records)` method processes the
 * buffer's batches. The class is found at boot among the application's providers (list it in a
 * module's `providers`, as a class, `useFactory` or `useValue` provider) and gets ordinary
 * constructor injection. It must be a singleton: request- and transient-scoped workers are refused.
 *
 * @throws InvalidOptionsError when `name` is not a non-empty string.
 */
export function BufferWorker(name: string): ClassDecorator {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidOptionsError('name', name, 'a non-empty string', '@BufferWorker()');
  }
  const metadata: BufferWorkerMetadata = { buffer: name };
  return SetMetadata(BUFIO_WORKER_METADATA, metadata);
}
