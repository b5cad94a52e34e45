import { afterAll } from '@jest/globals';
import { killFixtures } from '../../support/child-process.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

/**
 * For a spec whose buffers run in child processes: a key prefix of its own; after the file, the
 * children are killed and the keys under the prefix deleted.
 */
export function childProcessPrefix(label: string): string {
  const prefix = uniquePrefix(label);
  afterAll(async () => {
    killFixtures();
    await deleteKeys(prefix);
  });
  return prefix;
}
