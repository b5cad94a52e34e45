#!/usr/bin/env node
/**
 * Lays out the published package from two compilations of `lib/`:
 *
 * - `dist/cjs/` (tsconfig.cjs.json): the implementation, CommonJS, with the declarations. Every
 *   `require` of the package, and every `import` too, runs this one copy, so that an application
 *   holds one copy of each class (`instanceof` on errors, Nest's class-keyed providers).
 * - `dist/esm/`: what `import` resolves to. Each entry point is a small ES module that re-exports
 *   the CommonJS one. Modules that load NestJS are special: NestJS 12 is ES-module-only, and Jest's
 *   module runtime cannot `require()` an ES module before Node 24.9, so there the CommonJS build of
 *   the NestJS module cannot load. For them only, the ES module compilation (`dist/lib/`, from
 *   tsconfig.build.json) is copied in as a fallback: the entry tries the CommonJS build first and
 *   falls back when, and only when, CommonJS cannot load NestJS. In that runtime no `require` of
 *   the entry can succeed either, so the two never meet; the fallback's own imports of the rest of
 *   the library go through re-exporting modules to `dist/cjs/`, so errors and the engine stay one
 *   copy even then.
 *
 * Run after both compilations (`npm run build`).
 */
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CJS = join(ROOT, 'dist/cjs');
const ESM = join(ROOT, 'dist/esm');
const COMPILED_ESM = join(ROOT, 'dist/lib');
const require = createRequire(import.meta.url);

/** Public entry points: subpath of the package -> module under lib/, without extension. */
export const ENTRY_POINTS = {
  '.': 'index',
  './nest': 'nest/index',
  './file': 'storages/file/index',
  './redis': 'storages/redis/index',
  './postgres': 'storages/postgres/index',
  './testing': 'testing/index',
  './metrics': 'metrics/index',
  './health': 'health/index',
  './tracing': 'tracing/index',
};

/** Packages that may be ES-module-only (NestJS 12): a module importing one needs the fallback. */
const ESM_ONLY_PEERS = /^@nestjs\//;

const IMPORT =
  /(?:^|[\s;}])(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|[\s;])import\s*['"]([^'"]+)['"]/g;

/** Comments go first: an `@example` that imports NestJS must not make its module NestJS-bound. */
const COMMENT = /\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm;

function importsOf(file) {
  const source = readFileSync(file, 'utf8').replace(COMMENT, '');
  return [...source.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]);
}

function moduleFile(root, id) {
  return join(root, `${id}.js`);
}

function resolveRelative(fromId, specifier) {
  return posix.normalize(posix.join(posix.dirname(fromId), specifier.replace(/\.js$/, '')));
}

/** Whether a module of dist/lib loads an ES-module-only peer, itself or through its imports. */
function makeNestBound() {
  const memo = new Map();
  const visit = (id, stack) => {
    if (memo.has(id)) return memo.get(id);
    if (stack.has(id)) return false; // a cycle: decided by the other members
    stack.add(id);
    let bound = false;
    for (const specifier of importsOf(moduleFile(COMPILED_ESM, id))) {
      if (specifier.startsWith('.')) bound = visit(resolveRelative(id, specifier), stack) || bound;
      else if (ESM_ONLY_PEERS.test(specifier)) bound = true;
    }
    stack.delete(id);
    memo.set(id, bound);
    return bound;
  };
  return (id) => visit(id, new Set());
}

function relativeSpecifier(fromFile, toFile) {
  const path = relative(dirname(fromFile), toFile).split('\\').join('/');
  return path.startsWith('.') ? path : `./${path}`;
}

/** The names a CommonJS module exports at run time. */
function exportNames(id) {
  return Object.keys(require(moduleFile(CJS, id))).filter((name) => name !== '__esModule');
}

function exportList(names) {
  return names.length === 0 ? '' : `{ ${names.join(', ')} }`;
}

/** An ES module that re-exports the CommonJS build of module `id`. */
function reexport(id, target) {
  const names = exportNames(id);
  const from = relativeSpecifier(target, moduleFile(CJS, id));
  if (names.length === 0) return `// Types only.\nexport {};\n`;
  return `import cjs from '${from}';\n\nexport const ${exportList(names)} = cjs;\n`;
}

/** The entry of a NestJS-bound module: the CommonJS build, or the ES module one where it cannot load. */
function nestEntry(id, target, fallback) {
  const names = exportNames(id);
  const cjs = relativeSpecifier(target, moduleFile(CJS, id));
  const esm = relativeSpecifier(target, fallback);
  return `// The CommonJS build is the one implementation, so that require() and import share it. Where
// CommonJS cannot load an ES-module-only NestJS (Jest before Node 24.9), no require() of this
// entry can succeed either, and the ES module build of the same sources is used instead.
const CANNOT_REQUIRE_ESM = new Set(['ERR_REQUIRE_ESM', 'ERR_REQUIRE_ASYNC_MODULE']);

let entry;
try {
  entry = (await import('${cjs}')).default;
} catch (error) {
  if (!CANNOT_REQUIRE_ESM.has(error?.code)) throw error;
  entry = await import('${esm}');
}

export const ${exportList(names)} = entry;
`;
}

function writeFile(file, text) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

function build() {
  for (const dir of [CJS, COMPILED_ESM]) {
    if (!existsSync(dir)) throw new Error(`${relative(ROOT, dir)} is missing: run npm run build`);
  }
  writeFile(join(CJS, 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);
  rmSync(ESM, { recursive: true, force: true });

  const nestBound = makeNestBound();
  const done = new Set();
  const emit = (id) => {
    if (done.has(id)) return;
    done.add(id);
    const target = moduleFile(ESM, id);
    if (!nestBound(id)) {
      writeFile(target, reexport(id, target));
      return;
    }
    // A NestJS-bound module goes in as compiled, and so do (as re-exports or copies) its imports.
    const compiled = moduleFile(COMPILED_ESM, id);
    writeFile(target, readFileSync(compiled, 'utf8'));
    if (existsSync(`${compiled}.map`)) copyFileSync(`${compiled}.map`, `${target}.map`);
    for (const specifier of importsOf(compiled)) {
      if (specifier.startsWith('.')) emit(resolveRelative(id, specifier));
    }
  };

  for (const id of Object.values(ENTRY_POINTS)) {
    const target = moduleFile(ESM, id);
    if (nestBound(id)) {
      const fallbackId = `${id}.esm`;
      emit(id); // writes the compiled module at `target`, then its imports
      const fallback = moduleFile(ESM, fallbackId);
      const mapName = posix.basename(`${fallback}.map`);
      writeFile(
        fallback,
        readFileSync(target, 'utf8').replace(
          /sourceMappingURL=.*$/m,
          `sourceMappingURL=${mapName}`,
        ),
      );
      if (existsSync(`${target}.map`)) copyFileSync(`${target}.map`, `${fallback}.map`);
      rmSync(`${target}.map`, { force: true });
      writeFile(target, nestEntry(id, target, fallback));
    } else {
      emit(id);
    }
    // Types: one set of declarations, the CommonJS build's, re-exported for `import`.
    const declarations = join(ESM, `${id}.d.ts`);
    writeFile(
      declarations,
      `export * from '${relativeSpecifier(declarations, moduleFile(CJS, id))}';\n`,
    );
  }
}

build();
