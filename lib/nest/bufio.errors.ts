import { BufIOError } from '../core/errors.js';

/** Two buffers were registered under one name. Thrown at boot (or by `forFeature()` itself). */
export class DuplicateBufferError extends BufIOError {
  /** The name registered twice. */
  readonly buffer: string;

  constructor(buffer: string, detail: string) {
    super('BUFIO_DUPLICATE_BUFFER', `buffer "${buffer}" is registered twice: ${detail}`);
    this.buffer = buffer;
  }
}

/** Two workers were declared for one buffer. Thrown at boot. */
export class DuplicateWorkerError extends BufIOError {
  /** The buffer with two workers. */
  readonly buffer: string;

  constructor(buffer: string, first: string, second: string) {
    super(
      'BUFIO_DUPLICATE_WORKER',
      `buffer "${buffer}" has two workers, ${first} and ${second}: a buffer has exactly one worker`,
    );
    this.buffer = buffer;
  }
}

/** A worker, an event handler or a lookup names a buffer that no `forFeature()` registered. */
export class UnknownBufferError extends BufIOError {
  /** The name that was looked up. */
  readonly buffer: string;

  constructor(buffer: string, usedBy: string, known: readonly string[]) {
    const registered = known.length === 0 ? 'none' : known.map((n) => `"${n}"`).join(', ');
    super(
      'BUFIO_UNKNOWN_BUFFER',
      `${usedBy} names buffer "${buffer}", which is not registered (registered: ${registered}); ` +
        `register it with BufIOModule.forFeature({ name: '${buffer}' })`,
    );
    this.buffer = buffer;
  }
}

/** A `@BufferWorker` class cannot serve as a worker (no `work` method, not a singleton). */
export class InvalidWorkerError extends BufIOError {
  /** The buffer the worker was declared for. */
  readonly buffer: string;

  constructor(buffer: string, message: string) {
    super('BUFIO_INVALID_WORKER', message);
    this.buffer = buffer;
  }
}

/** A registered buffer has no worker at boot. */
export class MissingWorkerError extends BufIOError {
  /** The buffer without a worker. */
  readonly buffer: string;

  constructor(buffer: string) {
    super(
      'BUFIO_NO_WORKER',
      `buffer "${buffer}" has no worker: decorate a provider with @BufferWorker('${buffer}') and ` +
        `list it in a module's providers, or pass "worker" to BufIOModule.forFeature()`,
    );
    this.buffer = buffer;
  }
}
