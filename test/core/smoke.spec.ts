import { describe, expect, it } from '@jest/globals';
import { BufIO } from '../../lib/index.js';

describe('smoke', () => {
  it('processes pushed records', async () => {
    const seen: number[] = [];
    const b = new BufIO<number>({
      worker: async (r) => {
        seen.push(...r);
      },
      batchSize: 3,
      flushInterval: 50,
    });
    b.start();
    for (let i = 0; i < 7; i++) await b.push(i);
    await b.flush();
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const s = await b.stop();
    expect(s.timedOut).toBe(false);
  });
});
