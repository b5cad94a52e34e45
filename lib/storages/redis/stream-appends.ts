import { StorageError } from '../../core/errors.js';
import type { AppendBatcherOptions, CallOutcome } from '../append-batcher.js';
import type { ResolvedSharedOptions } from '../storage-options.js';
import { isNoScript } from './lua-script.js';
import { isUnavailable, type RedisConnection, storageFailure } from './redis-connection.js';
import { APPEND } from './scripts.js';

/** Records per append script: a tick of many producers in one, without holding Redis up long. */
const APPEND_CHUNK = 1000;
/** How long to wait before sending again when Redis is connected but answered "busy/loading". */
const BUSY_PAUSE = 100;

/** What `StreamAppends` needs from its storage. */
export interface StreamAppendsOptions {
  readonly connection: RedisConnection;
  /** The stream key. */
  readonly stream: string;
  /** Creates the stream (and the group, with a new scope): APPEND never creates it. */
  ensureStream(): Promise<void>;
}

/**
 * Appends to the buffer's stream: the calls of one tick, gathered by the storage's
 * `AppendBatcher` (see `batching`), go in one pipeline of APPEND scripts, each call stored whole
 * or not at all.
 */
export class StreamAppends {
  constructor(private readonly options: StreamAppendsOptions) {}

  /** How the storage's `AppendBatcher` writes here, under the storage's `onUnavailable` policy. */
  batching(policy: ResolvedSharedOptions): AppendBatcherOptions {
    return {
      write: (calls) => this.write(calls),
      failure: (error) => storageFailure('append', error),
      isUnavailable,
      pause: (_retry, until) => this.waitToAppend(until),
      // One connection, pipelined: bursts of successive ticks keep their order in flight.
      oneAtATime: false,
      onUnavailable: policy.onUnavailable,
      unavailableTimeout: policy.unavailableTimeout,
    };
  }

  /** One APPEND on its own, now, creating the stream first if it is missing. */
  async now(operation: string, texts: readonly string[]): Promise<unknown[]> {
    const { connection, stream } = this.options;
    const append = () => connection.script(operation, APPEND, [stream], texts);
    try {
      return (await append()) as unknown[];
    } catch (error) {
      if (!isNoStream((error as { cause?: unknown }).cause)) throw error;
      await this.options.ensureStream();
      return (await append()) as unknown[];
    }
  }

  /**
   * One pipeline for the appends of a tick, in as few commands as possible: the calls' records go
   * in one APPEND script per up to `APPEND_CHUNK` records, cut only between calls, so that each
   * call is stored whole or not at all. One command rather than one per record halves the
   * client's CPU per record, which is what bounds the rate here.
   */
  private async write(calls: readonly (readonly string[])[]): Promise<CallOutcome[]> {
    const { connection, stream } = this.options;
    await connection.whenReady('append', false, Infinity);
    const chunks: (readonly string[])[][] = [];
    let chunk: (readonly string[])[] = [];
    let size = 0;
    for (const texts of calls) {
      if (size > 0 && size + texts.length > APPEND_CHUNK) {
        chunks.push(chunk);
        chunk = [];
        size = 0;
      }
      chunk.push(texts);
      size += texts.length;
    }
    if (chunk.length > 0) chunks.push(chunk);
    const texts = chunks.map((group) =>
      group.length === 1 ? (group[0] as string[]) : group.flat(),
    );
    const pipeline = connection.client.pipeline();
    for (const chunkTexts of texts) APPEND.queue(pipeline, [stream], chunkTexts);
    const results = await connection.bounded('append', pipeline.exec());
    if (!results) throw new StorageError('Redis append failed: the pipeline returned no results');
    const outcomes: CallOutcome[] = [];
    for (let i = 0; i < chunks.length; i++) {
      const group = chunks[i] as (readonly string[])[];
      let ids: unknown[];
      try {
        const [error, reply] = results[i] ?? [new Error('no reply in the pipeline'), undefined];
        // Nothing of the chunk was stored: the server did not know the script, or the stream
        // is missing. Either is mended by sending it again on its own.
        if (isNoScript(error) || isNoStream(error)) {
          ids = await this.now('append', texts[i] as string[]);
        } else if (error) {
          throw storageFailure('append', error);
        } else {
          ids = reply as unknown[];
        }
      } catch (error) {
        outcomes.push(...group.map(() => error as Error));
        continue;
      }
      let at = 0;
      for (const call of group) outcomes.push(ids.slice(at, (at += call.length)).map(String));
    }
    return outcomes;
  }

  /**
   * Before appends that met an unreachable Redis are sent again: waits for the connection to be
   * ready, until `until`; or, when it is ready already (Redis answered "busy" or "loading"), a
   * moment. A client that has ended will not come back: its appends fail now.
   */
  private async waitToAppend(until: number): Promise<void> {
    const { connection } = this.options;
    if (connection.client.status === 'ready') {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, Math.min(BUSY_PAUSE, until - Date.now()))),
      );
      return;
    }
    try {
      await connection.whenReady('append', true, until);
    } catch (error) {
      if (connection.client.status === 'end') throw error;
    }
  }
}

/** APPEND found no stream (nothing was stored). */
function isNoStream(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSTREAM');
}
