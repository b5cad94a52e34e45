import { afterEach, describe, expect, it } from '@jest/globals';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { removeDir, segmentFiles, tempDir } from './support.js';

/*
 * The damage reported against 0.2.0, replayed through the public API and the files alone (no
 * knowledge of the format), so that the same test runs against any version.
 */

interface Item {
  readonly n: number;
  readonly pad: string;
}

let directory = '';
afterEach(async () => {
  if (directory) await removeDir(directory);
  directory = '';
});

async function write(count: number, segmentBytes?: number): Promise<void> {
  directory = await tempDir('scenario');
  const storage = await FileStorage.open<Item>({ directory, segmentBytes });
  for (let n = 0; n < count; n += 10) {
    await storage.append(Array.from({ length: 10 }, (_, i) => ({ n: n + i, pad: 'q'.repeat(60) })));
  }
  await storage.close();
}

async function recoveredNumbers(): Promise<number[]> {
  const storage = await FileStorage.open<Item>({ directory, onError: () => undefined });
  const batch = await storage.reserve(100_000, { now: Infinity });
  await storage.close();
  return batch.map((entry) => entry.record.n).sort((a, b) => a - b);
}

describe('FileStorage: damage that 0.2.0 turned into loss', () => {
  it('one flipped byte 10% into a segment of 1,000 records costs at most the record it hit', async () => {
    await write(1000);
    const [name] = await segmentFiles(directory);
    const file = path.join(directory, name as string);
    const data = await fs.readFile(file);
    const at = Math.floor(data.length / 10);
    data[at] = data[at]! ^ 0x08;
    await fs.writeFile(file, data);
    const numbers = await recoveredNumbers();
    expect(numbers.length).toBeGreaterThanOrEqual(999);
    expect(numbers.slice(-1)).toEqual([999]);
  });

  it('a damaged segment header does not lose the segment', async () => {
    await write(300, 8 * 1024);
    const names = await segmentFiles(directory);
    expect(names.length).toBeGreaterThan(2);
    const file = path.join(directory, names[1]!);
    const data = await fs.readFile(file);
    data[3] = data[3]! ^ 0xff;
    await fs.writeFile(file, data);
    expect(await recoveredNumbers()).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });
});
