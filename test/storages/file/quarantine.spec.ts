import { describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { InvalidOptionsError } from '../../../lib/core/errors.js';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { Quarantine } from '../../../lib/storages/file/quarantine.js';
import { tempDir, useSandbox } from './support.js';

/*
 * quarantine.log keeps what recovery and reads set aside; it is bounded by maxQuarantineBytes,
 * rotating once to quarantine.1.log.
 */

const sandbox = useSandbox('quarantine');

const entry = (n: number, bytes: number) => ({
  source: 'journal-000001.log',
  offset: n,
  reason: 'checksum',
  bytes: Buffer.alloc(bytes, 0x41 + (n % 26)),
});

function sizeOf(name: string): number {
  const file = path.join(sandbox.directory, name);
  return fs.existsSync(file) ? fs.statSync(file).size : 0;
}

describe('Quarantine', () => {
  it('keeps quarantine.log within its bound: a full one becomes quarantine.1.log, the one before is dropped', async () => {
    sandbox.directory = await tempDir('quarantine');
    const max = 4096;
    const quarantine = new Quarantine(sandbox.directory, max);
    const locations: string[] = [];
    for (let n = 0; n < 40; n++) locations.push(...(await quarantine.keep([entry(n, 500)])));
    expect(quarantine.bytesKept).toBe(40 * 500);
    // Every file on disk is within the bound, and the two hold the latest entries, in order.
    expect(sizeOf('quarantine.log')).toBeGreaterThan(0);
    expect(sizeOf('quarantine.log')).toBeLessThanOrEqual(max);
    expect(sizeOf('quarantine.1.log')).toBeGreaterThan(max - 700);
    expect(sizeOf('quarantine.1.log')).toBeLessThanOrEqual(max);
    const names = fs.readdirSync(sandbox.directory).filter((name) => name.startsWith('quarantine'));
    expect(names.sort()).toEqual(['quarantine.1.log', 'quarantine.log']);
    const kept = ['quarantine.1.log', 'quarantine.log']
      .map((name) => fs.readFileSync(path.join(sandbox.directory, name), 'latin1'))
      .join('');
    const offsets = [...kept.matchAll(/"offset":(\d+)/g)].map((match) => Number(match[1]));
    expect(offsets.length).toBeGreaterThan(8);
    expect(offsets).toEqual(offsets.map((_, i) => 40 - offsets.length + i));
    // The last location reported is the last entry of the current file.
    const last = locations[locations.length - 1]!;
    const at = Number(/at offset (\d+)$/.exec(last)?.[1]);
    const current = fs.readFileSync(path.join(sandbox.directory, 'quarantine.log'), 'latin1');
    expect(current.slice(at)).toMatch(
      /^BUFIO-QUARANTINE \{"source":"journal-000001.log","offset":39,/,
    );
  });

  it('an entry larger than the bound is kept whole, in a file of its own', async () => {
    sandbox.directory = await tempDir('quarantine');
    const quarantine = new Quarantine(sandbox.directory, 4096);
    await quarantine.keep([entry(0, 100)]);
    const [location] = await quarantine.keep([entry(1, 10_000)]);
    expect(location).toMatch(/quarantine\.log at offset 0$/);
    expect(sizeOf('quarantine.log')).toBeGreaterThan(10_000);
    expect(fs.readFileSync(path.join(sandbox.directory, 'quarantine.1.log'), 'latin1')).toContain(
      '"offset":0,',
    );
  });

  it('FileStorage checks maxQuarantineBytes', async () => {
    const directory = await tempDir('quarantine');
    sandbox.directory = directory;
    for (const maxQuarantineBytes of [0, 4095, 1.5, -1, Infinity]) {
      await expect(FileStorage.open({ directory, maxQuarantineBytes })).rejects.toThrow(
        InvalidOptionsError,
      );
    }
    const storage = sandbox.track(await FileStorage.open({ directory, maxQuarantineBytes: 4096 }));
    expect(storage.size()).toBe(0);
  });
});
