#!/usr/bin/env node
/**
 * Type-checks every TypeScript snippet of README.md as a user's file would be: against the built
 * package (through `node_modules/@risemaxi/bufio`, its `exports` and types), with `strict`, in an
 * ES module project (`module: nodenext`) and in a CommonJS one (`module: commonjs`, the old
 * `node` resolution, through `typesVersions`). Each snippet is a module of its own; a fence's
 * `file=` names the file (others import it by that name); the application code the snippets
 * import (`./db.js`, ...) is declared in .ci/readme-stubs/. A snippet written for Vitest is
 * checked by the consumer matrix, in a project that has Vitest. Errors are reported at their
 * README line. Run after `npm run build`.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { typescriptSnippets } from './readme-snippets.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// Inside the repository, so that the peers resolve from its node_modules.
const WORK = join(ROOT, 'dist/readme-check');

const BASE_OPTIONS = {
  target: 'ES2022',
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  esModuleInterop: true,
  isolatedModules: true,
  types: ['node'],
};

const VARIANTS = [
  {
    name: 'esm',
    type: 'module',
    options: { module: 'nodenext', moduleResolution: 'nodenext' },
    // Top-level await is fine in an ES module.
    accepts: () => true,
  },
  {
    name: 'cjs',
    type: 'commonjs',
    options: { module: 'commonjs', moduleResolution: 'node10' },
    // A CommonJS module cannot await at its top level: those snippets are ESM-only.
    accepts: (code) => !/^(?:const [^=]+= )?await /m.test(code),
  },
];

function check(variant, snippets) {
  const dir = join(WORK, variant.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'node_modules/@risemaxi'), { recursive: true });
  symlinkSync(ROOT, join(dir, 'node_modules/@risemaxi/bufio'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true, type: variant.type }));
  const options = { ...BASE_OPTIONS, ...variant.options };
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: options, include: ['src'] }, null, 2),
  );
  cpSync(join(ROOT, '.ci/readme-stubs'), join(dir, 'src'), { recursive: true });
  const where = new Map();
  let count = 0;
  for (const snippet of snippets) {
    if (!variant.accepts(snippet.code)) continue;
    const file = snippet.attributes.file ?? `src/snippet-${snippet.line}.ts`;
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), snippet.code);
    where.set(file, snippet.line);
    count++;
  }
  const tsc = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'],
    { cwd: dir, encoding: 'utf8' },
  );
  // Point each error at the README line it comes from.
  const output = `${tsc.stdout}${tsc.stderr}`.replace(
    /^(src\/[^(]+)\((\d+),(\d+)\)/gm,
    (match, file, line, column) =>
      where.has(file)
        ? `README.md:${where.get(file) + Number(line) - 1}:${column} (${file})`
        : match,
  );
  if (tsc.status !== 0) {
    process.stdout.write(output);
    return false;
  }
  process.stdout.write(`readme: ${count} snippets type-check as ${variant.name} (strict)\n`);
  return true;
}

const snippets = typescriptSnippets(join(ROOT, 'README.md')).filter(
  (s) => s.attributes.runner !== 'vitest',
);
const files = new Set(readdirSync(join(ROOT, '.ci/readme-stubs')));
if (snippets.some((s) => s.attributes.file && files.has(s.attributes.file))) {
  throw new Error('a README snippet and a stub have the same file name');
}
const results = VARIANTS.map((variant) => check(variant, snippets));
process.exitCode = results.every(Boolean) ? 0 : 1;
