import { describe, expect, it } from '@jest/globals';
import { crc32 } from '../../../lib/storages/file/crc32.js';

/** CRC-32 bit by bit, from its definition (reflected polynomial 0xEDB88320): the reference. */
function reference(data: Uint8Array, previous = 0): number {
  let crc = ~previous;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return ~crc >>> 0;
}

describe('crc32', () => {
  it('is the CRC-32 of zip and PNG, which every journal format has used', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('agrees with the reference on every range length, short (tables) and long (zlib), and continues across ranges', () => {
    const data = Buffer.alloc(5000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131 + (i >> 7)) & 0xff;
    for (const length of [0, 1, 7, 8, 9, 100, 511, 512, 513, 4096, 4999]) {
      const range = data.subarray(1, 1 + length);
      expect(crc32(data, 1, 1 + length)).toBe(reference(range));
      expect(crc32(data, 1, 1 + length, 0x12345678)).toBe(reference(range, 0x12345678));
      // One checksum over two ranges, as a frame's is (its head, then its body).
      const split = length >> 1;
      expect(crc32(data, 1 + split, 1 + length, crc32(data, 1, 1 + split))).toBe(reference(range));
    }
  });
});
