/**
 * A small seeded generator (mulberry32), so that a random schedule can be replayed. Imports
 * nothing, so that fixture programs use it too.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The seed of a test's random choices: `BUFIO_TEST_SEED` when set, otherwise a new one. It is
 * printed with `label`, so that a failing run can be replayed.
 */
export function testSeed(label: string): number {
  const seed = Number(process.env.BUFIO_TEST_SEED ?? Date.now() % 2 ** 31);
  process.stdout.write(`${label}: seed ${seed} (replay with BUFIO_TEST_SEED=${seed})\n`);
  return seed;
}
