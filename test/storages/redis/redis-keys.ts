import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { REDIS_URL } from '../../support/services.js';

/**
 * A key prefix no other test, test run or jest worker uses. It carries a hash tag, so that the
 * storage uses it as given (and every `${prefix}:…` key lives in one slot).
 */
export function uniquePrefix(label: string): string {
  return `bufio-test:redis:{${label}:${process.pid}:${randomBytes(4).toString('hex')}}`;
}

/** Deletes every key under `prefix` on the shared Redis. */
export async function deleteKeys(prefix: string, url = REDIS_URL): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 0 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(
        cursor,
        'MATCH',
        `${globEscape(prefix)}:*`,
        'COUNT',
        1000,
      );
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

/** `text` as a glob pattern matching itself (Redis's MATCH: `*`, `?`, `[`, `]` and `\` are special). */
export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
