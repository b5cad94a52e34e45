import zlib from 'node:zlib';

/**
 * CRC-32 (IEEE 802.3, the polynomial of zip and PNG), the journal's checksum since its first
 * format. Journal framing checksums every record when it is written and when it is read back, so
 * this is on both paths. `zlib.crc32` (Node 20.15 / 22.2, within our engines) computes the same
 * checksum natively, but each call costs a few hundred nanoseconds of binding overhead (and a
 * `subarray` for a range): measured on Node 20, the JavaScript below (eight bytes at a time with
 * eight lookup tables, "slicing-by-8") is faster up to a few hundred bytes, the size of most
 * records, and the native one beyond. So ranges from `NATIVE_FROM` bytes go to zlib.
 */

/** From this many bytes, `zlib.crc32` is faster than the tables (several times so at 4 KiB). */
const NATIVE_FROM = 512;

const TABLES = buildTables();
const T0 = TABLES.subarray(0, 256);
const T1 = TABLES.subarray(256, 512);
const T2 = TABLES.subarray(512, 768);
const T3 = TABLES.subarray(768, 1024);
const T4 = TABLES.subarray(1024, 1280);
const T5 = TABLES.subarray(1280, 1536);
const T6 = TABLES.subarray(1536, 1792);
const T7 = TABLES.subarray(1792, 2048);

function buildTables(): Int32Array {
  const tables = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    tables[n] = c;
  }
  // Table k advances a byte through k further zero bytes, so eight bytes fold in one step.
  for (let n = 0; n < 256; n++) {
    let c = tables[n]!;
    for (let k = 1; k < 8; k++) {
      c = tables[c & 0xff]! ^ (c >>> 8);
      tables[k * 256 + n] = c;
    }
  }
  return tables;
}

/**
 * CRC-32 of `data[start, end)`. Pass the result of a previous call as `previous` to continue a
 * checksum over several ranges, as if they were one.
 */
export function crc32(
  data: Uint8Array,
  start = 0,
  end: number = data.length,
  previous = 0,
): number {
  // Short ranges stay here, and so the empty one: zlib.crc32 of it is 0, whatever `previous` is.
  if (end - start >= NATIVE_FROM) return zlib.crc32(data.subarray(start, end), previous);
  let crc = ~previous;
  let i = start;
  while (end - i >= 8) {
    crc ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    crc =
      T7[crc & 0xff]! ^
      T6[(crc >>> 8) & 0xff]! ^
      T5[(crc >>> 16) & 0xff]! ^
      T4[crc >>> 24]! ^
      (T3[data[i + 4]!] as number) ^
      (T2[data[i + 5]!] as number) ^
      (T1[data[i + 6]!] as number) ^
      (T0[data[i + 7]!] as number);
    i += 8;
  }
  while (i < end) crc = (T0[(crc ^ data[i++]!) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}
