import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe('prom-client is an optional peer dependency', () => {
  it('is not needed by @risemaxi/bufio/nest, and BufIOMetricsModule says to install it', () => {
    const run = spawnSync(process.execPath, ['dist/test/fixtures/nest/without-prom-client.js'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({
      promClientLoads: false,
      withoutMetrics: 'booted',
      withMetrics:
        'UnsupportedError BUFIO_UNSUPPORTED: BufIOMetricsModule needs prom-client, an optional ' +
        'peer dependency of @risemaxi/bufio: install it (npm install prom-client)',
    });
  });
});
