/**
 * The package as published (dist/cjs, dist/esm; `npm test` builds them): `require` and `import`
 * must load one copy of the library, and the NestJS entries must still load where CommonJS cannot
 * load NestJS 12. Each case runs in a child process that resolves `@risemaxi/bufio` through the
 * package's own `exports`, as an application does.
 */
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs `source` as an ES module in the repository root; returns what it printed as JSON. */
function runModule(source: string, nodeArgs: string[] = []): unknown {
  const run = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', source], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`child failed (${run.status}):\n${run.stderr}`);
  return JSON.parse(run.stdout);
}

const ENTRIES = [
  '',
  '/nest',
  '/file',
  '/redis',
  '/postgres',
  '/testing',
  '/metrics',
  '/health',
  '/tracing',
];

describe('one copy of the library, however it is loaded', () => {
  it('gives require() and import the same objects, for every entry point', () => {
    const result = runModule(`
      import 'reflect-metadata';
      import { createRequire } from 'node:module';
      const require = createRequire(process.cwd() + '/');
      const differing = {};
      for (const entry of ${JSON.stringify(ENTRIES)}) {
        const name = '@risemaxi/bufio' + entry;
        const required = require(name);
        const imported = await import(name);
        const keys = Object.keys(required).filter((k) => k !== '__esModule');
        differing['.' + entry] = keys.filter((k) => required[k] !== imported[k]).length + '/' + keys.length;
      }
      console.log(JSON.stringify(differing));
    `) as Record<string, string>;
    // Every entry point the package exports (but its manifest) was compared.
    const manifest = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>;
    };
    const exported = Object.keys(manifest.exports).filter((key) => key !== './package.json');
    expect(Object.keys(result).sort()).toEqual(exported.sort());
    for (const [entry, count] of Object.entries(result)) {
      expect([entry, count.split('/')[0]]).toEqual([entry, '0']);
      expect(Number(count.split('/')[1])).toBeGreaterThan(0);
    }
  });

  it('makes an error thrown through one module system an instance of the other one’s class', () => {
    expect(
      runModule(`
        import 'reflect-metadata';
        import { createRequire } from 'node:module';
        const require = createRequire(process.cwd() + '/');
        const { BufIO } = await import('@risemaxi/bufio');
        const { BufIOError, InvalidOptionsError } = require('@risemaxi/bufio');
        const { BufIOService, UnknownBufferError } = require('@risemaxi/bufio/nest');
        let thrown;
        try { new BufIO({ batchSize: -1 }); } catch (error) { thrown = error; }
        const nest = await import('@risemaxi/bufio/nest');
        console.log(JSON.stringify({
          options: thrown instanceof InvalidOptionsError && thrown instanceof BufIOError,
          nest: new nest.UnknownBufferError('a', 'b', []) instanceof UnknownBufferError,
          service: nest.BufIOService === BufIOService,
        }));
      `),
    ).toEqual({ options: true, nest: true, service: true });
  });
});

describe('where CommonJS cannot load NestJS 12 (require of ES modules turned off)', () => {
  const NO_REQUIRE_ESM = ['--no-experimental-require-module'];

  it('falls back to the ES module build of the NestJS entry, over the one engine', () => {
    expect(
      runModule(
        `
        import 'reflect-metadata';
        import { createRequire } from 'node:module';
        import { Module } from '@nestjs/common';
        import { NestFactory } from '@nestjs/core';
        const require = createRequire(process.cwd() + '/');
        let requireNest;
        try { require('@risemaxi/bufio/nest'); requireNest = 'loaded'; } catch (error) { requireNest = error.code; }
        const { BufIOModule, BufIOService, UnknownBufferError } = await import('@risemaxi/bufio/nest');
        const { BufIO, BufIOError } = require('@risemaxi/bufio');
        const written = [];
        class AppModule {}
        Module({ imports: [BufIOModule.forFeature({ name: 'n', worker: (r) => void written.push(...r) })] })(AppModule);
        const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
        const bufio = app.get(BufIOService);
        await bufio.push('n', [1, 2]);
        await bufio.flushAll();
        let unknown;
        try { bufio.get('nope'); } catch (error) { unknown = error; }
        const engine = bufio.get('n') instanceof BufIO;
        await app.close();
        console.log(JSON.stringify({
          requireNest,
          written,
          engine,
          errors: unknown instanceof UnknownBufferError && unknown instanceof BufIOError,
        }));
      `,
        NO_REQUIRE_ESM,
      ),
    ).toEqual({ requireNest: 'ERR_REQUIRE_ESM', written: [1, 2], engine: true, errors: true });
  });
});

describe('prom-client, an optional peer, under CommonJS', () => {
  it('is not needed by @risemaxi/bufio/nest, and BufIOMetricsModule says to install it', () => {
    // An application without prom-client: CommonJS resolution refuses it.
    const source = `
      const Module = require('node:module');
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request === 'prom-client') {
          const error = new Error("Cannot find module 'prom-client'");
          error.code = 'MODULE_NOT_FOUND';
          throw error;
        }
        return resolve.call(this, request, ...rest);
      };
      require('reflect-metadata');
      const { Module: NestModule } = require('@nestjs/common');
      const { NestFactory } = require('@nestjs/core');
      const { BufIOModule, BufIOMetricsModule } = require('@risemaxi/bufio/nest');
      class WithMetrics {}
      NestModule({
        imports: [
          BufIOModule.forFeature({ name: 'events', worker: () => {} }),
          BufIOMetricsModule.forRoot(),
        ],
      })(WithMetrics);
      NestFactory.createApplicationContext(WithMetrics, { logger: false, abortOnError: false }).then(
        () => console.log(JSON.stringify('booted')),
        (error) => console.log(JSON.stringify(error.name + ' ' + error.code + ': ' + error.message)),
      );
    `;
    const run = spawnSync(process.execPath, ['-e', source], { cwd: ROOT, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toBe(
      'UnsupportedError BUFIO_UNSUPPORTED: BufIOMetricsModule needs prom-client, an optional ' +
        'peer dependency of @risemaxi/bufio: install it (npm install prom-client)',
    );
  });
});
