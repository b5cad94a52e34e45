import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The sample imports the package by its public name (`@risemaxi/bufio/nest`), as users do. Under
 * Jest those names go to the TypeScript sources, as `paths` in tsconfig.json does for the type
 * check, so that a test and the sample it drives share one copy of every class.
 */
const { paths } = JSON.parse(
  readFileSync(join(import.meta.dirname, 'tsconfig.json'), 'utf8'),
).compilerOptions;
const selfReferences = Object.fromEntries(
  Object.entries(paths).map(([name, [target]]) => [
    `^${name.replace(/[/.]/g, '\\$&')}$`,
    `<rootDir>/${target.replace(/^\.\//, '')}`,
  ]),
);

/** Jest runs the TypeScript sources as ESM (Nest 12 is ESM-only); type checking is `npm run typecheck`. */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    ...selfReferences,
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testMatch: ['<rootDir>/test/**/*.spec.ts'],
  testTimeout: 30_000,
};
