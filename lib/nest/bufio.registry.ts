import { Injectable } from '@nestjs/common';
import type { BufIO } from '../core/bufio.js';
import type { Worker } from '../core/worker.js';
import type { BufferSettings } from './bufio-options.js';
import { DuplicateBufferError, DuplicateWorkerError, UnknownBufferError } from './bufio.errors.js';

/** A registered buffer, with what the module needs to run it. */
export interface BufferEntry {
  readonly name: string;
  readonly buffer: BufIO<unknown, unknown>;
  readonly settings: BufferSettings;
  /** Who provides the worker (`EventsWorker (in AppModule)`), once known. */
  workerSource: string | undefined;
  /**
   * The buffer was put in place of the one `forFeature()` declares (`overrideProvider` in a test):
   * it may bring its own worker, which the module cannot see, so a missing worker is left to
   * `start()` to report.
   */
  readonly replaced?: boolean;
}

/**
 * Every buffer of the application, by name. One per application: it lives in the global core
 * module, however many times `forRoot` and `forFeature` are imported.
 */
@Injectable()
export class BufIORegistry {
  private readonly entries = new Map<string, BufferEntry>();

  /**
   * @throws DuplicateBufferError when the name is taken.
   */
  assertFree(name: string): void {
    if (this.entries.has(name)) {
      throw new DuplicateBufferError(
        name,
        'BufIOModule.forFeature() was given this name in two places; register a buffer once and ' +
          'import that module (or use BufIOService.get(name)) wherever it is needed',
      );
    }
  }

  /** Adds a buffer; `workerSource` is set when its options already carry a worker. */
  add(entry: BufferEntry): void {
    this.assertFree(entry.name);
    this.entries.set(entry.name, entry);
  }

  /** Whether a buffer is registered as `name`. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /**
   * The entry of buffer `name`.
   *
   * @throws UnknownBufferError naming `usedBy` when no buffer has that name.
   */
  get(name: string, usedBy = 'BufIOService.get()'): BufferEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new UnknownBufferError(name, usedBy, this.names());
    return entry;
  }

  /**
   * Attaches a discovered worker to its buffer.
   *
   * @throws UnknownBufferError when no buffer has that name.
   * @throws DuplicateWorkerError when the buffer has a worker already.
   */
  attachWorker(name: string, worker: Worker<unknown, unknown>, source: string): void {
    const entry = this.get(name, `@BufferWorker('${name}') on ${source}`);
    if (entry.workerSource !== undefined) {
      throw new DuplicateWorkerError(name, entry.workerSource, source);
    }
    entry.buffer.setWorker(worker);
    entry.workerSource = source;
  }

  /** Names of the registered buffers, in registration order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** The registered buffers, in registration order. */
  all(): BufferEntry[] {
    return [...this.entries.values()];
  }
}
