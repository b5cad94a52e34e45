/**
 * The README's TypeScript snippets, for the checks that compile them (.ci/check-readme.mjs) and
 * for the consumer matrix, which adds the README's NestJS feature to generated projects.
 *
 * A fence may carry attributes after its language: ```ts file=src/events/events.module.ts names
 * the file the snippet is (other snippets import it by that name); runner=jest or runner=vitest
 * marks a test written for that runner.
 */
import { readFileSync } from 'node:fs';

const OPEN = /^```(\w+)(.*)$/;
const CLOSE = /^```\s*$/;

/** Every fenced block of `markdown`: its language, attributes, first line number and code. */
export function fencedBlocks(markdown) {
  const blocks = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = OPEN.exec(lines[i]);
    if (!open) continue;
    const start = i + 1;
    while (i + 1 < lines.length && !CLOSE.test(lines[i + 1])) i++;
    const attributes = Object.fromEntries(
      open[2]
        .trim()
        .split(/\s+/)
        .filter((pair) => pair.includes('='))
        .map((pair) => pair.split('=', 2)),
    );
    blocks.push({
      language: open[1],
      attributes,
      line: start,
      code: `${lines.slice(start, i + 1).join('\n')}\n`,
    });
    i++; // the closing fence
  }
  return blocks;
}

/** The README's TypeScript snippets. */
export function typescriptSnippets(readmePath) {
  return fencedBlocks(readFileSync(readmePath, 'utf8')).filter((b) => b.language === 'ts');
}

/** Drops `.js` from relative imports, as a CommonJS project that resolves like Jest writes them. */
export function withoutJsExtensions(code) {
  return code.replace(/(from\s+['"]\.{1,2}\/[^'"]+)\.js(['"])/g, '$1$2');
}
