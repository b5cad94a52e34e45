import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasGc, now, type RunConfig, type SuiteResult } from './harness.js';
import { machineInfo } from './machine.js';
import { formatSuite, writeReport, type BenchReport } from './report.js';
import { durableSuite } from './suites/durable-storages.js';
import { engineOverheadSuite } from './suites/engine-overhead.js';
import { latencySuite } from './suites/latency.js';
import { memorySuite } from './suites/memory.js';
import { outageSuite } from './suites/outage.js';
import { postgresSuite } from './suites/postgres.js';
import { postgresStorageSuite } from './suites/postgres-storage.js';
import { pushCostSuite } from './suites/push-cost.js';
import { redisSuite } from './suites/redis.js';
import { scaleOutSuite } from './suites/scale-out.js';

/** The suites, in the order of the issue; `--suite <id>` picks some. */
const SUITES: Record<string, (config: RunConfig) => Promise<SuiteResult>> = {
  push: pushCostSuite,
  postgres: postgresSuite,
  durable: durableSuite,
  memory: memorySuite,
  latency: latencySuite,
  'postgres-storage': postgresStorageSuite,
  redis: redisSuite,
  'scale-out': scaleOutSuite,
  outage: outageSuite,
  'engine-overhead': engineOverheadSuite,
};

const USAGE = `usage: npm run bench [-- --quick] [-- --suite <${Object.keys(SUITES).join('|')}> ...]

  --quick          fewer rounds and rows: the whole run takes under two minutes
  --suite <name>   run only this suite (repeatable); results go to bench/results/partial.json
                   and docs/BENCHMARKS.md is left alone
`;

interface Args {
  readonly quick: boolean;
  readonly suites: readonly string[];
}

function parseArgs(argv: readonly string[]): Args {
  let quick = false;
  const suites: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--suite' || arg.startsWith('--suite=')) {
      const name = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      if (name === undefined || !(name in SUITES)) {
        throw new Error(`unknown suite ${JSON.stringify(name)}\n\n${USAGE}`);
      }
      suites.push(name);
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${JSON.stringify(arg)}\n\n${USAGE}`);
    }
  }
  return { quick, suites };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!hasGc()) {
    throw new Error('run with node --expose-gc (npm run bench does): the memory suites need it');
  }
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const partial = args.suites.length > 0;
  const ids = partial ? args.suites : Object.keys(SUITES);
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const config: RunConfig = { quick: args.quick, log };
  const started = now();
  const machine = await machineInfo();
  process.stdout.write(
    `BufIO benchmarks${args.quick ? ' (quick)' : ''}: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}\n`,
  );

  const results: SuiteResult[] = [];
  for (const id of ids) {
    log(`running suite "${id}"...`);
    const result = await (SUITES[id] as (c: RunConfig) => Promise<SuiteResult>)(config);
    results.push(result);
    process.stdout.write(`${formatSuite(result)}\n`);
  }

  const report: BenchReport = {
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    date: new Date().toISOString(),
    quick: args.quick,
    suites: ids,
    machine,
    seconds: (now() - started) / 1000,
    results,
  };
  const json = path.join(root, 'bench', 'results', partial ? 'partial.json' : 'latest.json');
  const markdown = partial ? undefined : path.join(root, 'docs', 'BENCHMARKS.md');
  await writeReport(report, { json, markdown });
  const targets = results.flatMap((r) => r.targets);
  const missed = targets.filter((t) => t.met === false).length;
  const unmeasured = targets.filter((t) => t.met === null).length;
  process.stdout.write(
    `\n${targets.length - missed - unmeasured}/${targets.length} targets met` +
      `${missed > 0 ? `, ${missed} missed` : ''}${unmeasured > 0 ? `, ${unmeasured} not measured` : ''}` +
      ` in ${report.seconds.toFixed(0)} s\nwrote ${path.relative(root, json)}` +
      `${markdown ? ` and ${path.relative(root, markdown)}` : ''}\n`,
  );
}

main().then(
  // Drivers and libraries may leave handles behind; the results are written.
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
