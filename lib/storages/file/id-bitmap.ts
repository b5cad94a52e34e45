const CHUNK_BITS = 16;
const CHUNK_IDS = 1 << CHUNK_BITS;
const CHUNK_WORDS = CHUNK_IDS >>> 5;
/** Each chunk's last word counts its ids, so that an emptied chunk is freed at once. */
const POPULATION = CHUNK_WORDS;

/**
 * A set of record ids, one bit each, in chunks of 65,536 ids allocated when first used: about
 * 1 bit per id over the range the set spans, whatever the ids' size (they go up to 2^53). What
 * recovery knows of ten million records fits in a few MiB this way.
 */
export class IdBitmap {
  private readonly chunks = new Map<number, Uint32Array>();
  private count = 0;
  // Ids come in runs: the chunk of the last one looked up.
  private lastKey = -1;
  private lastChunk: Uint32Array | undefined;

  /** Ids in the set. */
  get size(): number {
    return this.count;
  }

  has(id: number): boolean {
    const chunk = this.chunkOf(Math.floor(id / CHUNK_IDS));
    if (chunk === undefined) return false;
    const bit = id % CHUNK_IDS;
    return (chunk[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }

  /** Adds `id`; false when it was there already. */
  add(id: number): boolean {
    const key = Math.floor(id / CHUNK_IDS);
    const chunk = this.chunkOf(key) ?? this.newChunk(key);
    const bit = id % CHUNK_IDS;
    const word = bit >>> 5;
    const mask = 1 << (bit & 31);
    const before = chunk[word]!;
    if ((before & mask) !== 0) return false;
    chunk[word] = before | mask;
    chunk[POPULATION]!++;
    this.count++;
    return true;
  }

  /** Removes `id`; false when it was not there. A chunk left empty is freed. */
  delete(id: number): boolean {
    const key = Math.floor(id / CHUNK_IDS);
    const chunk = this.chunkOf(key);
    if (chunk === undefined) return false;
    const bit = id % CHUNK_IDS;
    const word = bit >>> 5;
    const mask = 1 << (bit & 31);
    const before = chunk[word]!;
    if ((before & mask) === 0) return false;
    chunk[word] = before & ~mask;
    this.count--;
    if (--chunk[POPULATION]! === 0) {
      this.chunks.delete(key);
      this.lastKey = -1;
      this.lastChunk = undefined;
    }
    return true;
  }

  private chunkOf(key: number): Uint32Array | undefined {
    if (key === this.lastKey) return this.lastChunk;
    const chunk = this.chunks.get(key);
    if (chunk !== undefined) {
      this.lastKey = key;
      this.lastChunk = chunk;
    }
    return chunk;
  }

  private newChunk(key: number): Uint32Array {
    const chunk = new Uint32Array(CHUNK_WORDS + 1);
    this.chunks.set(key, chunk);
    this.lastKey = key;
    this.lastChunk = chunk;
    return chunk;
  }

  /** Adds every id of `[first, first + count)`. */
  addRange(first: number, count: number): void {
    for (let id = first, end = first + count; id < end;) {
      const bit = id % CHUNK_IDS;
      // Whole words where the range covers them; bit by bit at its ragged ends.
      if ((bit & 31) === 0 && end - id >= 32) {
        const key = Math.floor(id / CHUNK_IDS);
        const chunk = this.chunkOf(key) ?? this.newChunk(key);
        const word = bit >>> 5;
        const added = 32 - popCount(chunk[word]!);
        chunk[POPULATION]! += added;
        this.count += added;
        chunk[word] = 0xffffffff;
        id += 32;
      } else {
        this.add(id);
        id++;
      }
    }
  }
}

function popCount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
