/**
 * Run as a child process by the memory suite: heap per record of a plain array of fresh records,
 * in a process where no BufIO code has run. V8 shares field representations between object
 * literals of the same shape, so code elsewhere in a process can change what a record costs;
 * this is the baseline no buffer has touched. Prints `{ "bytesPerRecord": n }`.
 */
import { settledHeap } from '../harness.js';
import { makeRecord, type BenchRecord } from '../records.js';

const count = Number(process.argv[2] ?? 1_000_000);
const before = settledHeap();
const records: BenchRecord[] = [];
for (let i = 0; i < count; i++) records.push(makeRecord(i));
const after = settledHeap();
if (records.length !== count) throw new Error('records were not built');
process.stdout.write(`${JSON.stringify({ bytesPerRecord: (after - before) / count })}\n`);
