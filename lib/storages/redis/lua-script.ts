import { createHash } from 'node:crypto';
import type { ChainableCommander, Cluster, Redis } from 'ioredis';

/** A standalone ioredis client or a Redis Cluster client: the storage works with either. */
export type RedisClient = Redis | Cluster;

/**
 * A Lua script run with `EVALSHA`, sent in full (`EVAL`) only when the server does not know it yet
 * (first use, or after a restart or `SCRIPT FLUSH`). Unlike ioredis's `defineCommand`, it adds
 * nothing to a client the user owns. On a cluster, `EVAL` goes to the node of the keys, and loads
 * the script there.
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(
    client: RedisClient,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }

  /**
   * Queues `EVALSHA` on a pipeline. A pipeline cannot fall back to `EVAL` by itself: when its reply
   * is a `NOSCRIPT` error (see `isNoScript`), nothing ran, and the caller runs the script again.
   */
  queue(
    pipeline: ChainableCommander,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): void {
    pipeline.evalsha(this.sha, keys.length, ...keys, ...args);
  }
}

/** The server does not know the script (yet): nothing of it ran. */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}
