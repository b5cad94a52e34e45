#!/usr/bin/env node
/**
 * `prepack`/`postpack`: the published package.json carries what users need, not what contributors
 * use to build and test this repository. `strip` keeps the original aside and writes the published
 * one; `restore` puts the original back, byte for byte.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const MANIFEST = 'package.json';
const KEPT = '.package.json.orig';
const CONTRIBUTOR_ONLY = ['scripts', 'devDependencies', 'allowScripts'];

const command = process.argv[2];
if (command === 'strip') {
  if (existsSync(KEPT)) throw new Error(`${KEPT} exists: a previous pack did not restore it`);
  const text = readFileSync(MANIFEST, 'utf8');
  writeFileSync(KEPT, text);
  const manifest = JSON.parse(text);
  for (const field of CONTRIBUTOR_ONLY) delete manifest[field];
  writeFileSync(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
} else if (command === 'restore') {
  if (existsSync(KEPT)) renameSync(KEPT, MANIFEST);
} else {
  throw new Error('usage: node scripts/manifest.mjs strip|restore');
}
