import { describe, expect, it, jest } from '@jest/globals';
import { InvalidOptionsError } from '../../lib/core/errors.js';
import { FileStorage } from '../../lib/storages/file/index.js';
import { resolveFileStorageOptions } from '../../lib/storages/file/file-storage-options.js';
import { PostgresStorage } from '../../lib/storages/postgres/index.js';
import { resolvePostgresOptions } from '../../lib/storages/postgres/postgres-storage-options.js';
import { RedisStorage } from '../../lib/storages/redis/index.js';
import { resolveRedisStorageOptions } from '../../lib/storages/redis/redis-storage-options.js';
import { jsonSerializer } from '../../lib/storages/serializer.js';
import { STORAGE_DEFAULTS, warnOnError } from '../../lib/storages/storage-options.js';

// Constructing a storage connects to nothing: these need no service.
const bases = {
  FileStorage: { directory: '/nonexistent/never-opened' },
  RedisStorage: { url: 'redis://127.0.0.1:1', redisOptions: { lazyConnect: true } },
  PostgresStorage: { connectionString: 'postgres://nobody@127.0.0.1:1/none' },
} as const;
type Kind = keyof typeof bases;
const shared: Kind[] = ['RedisStorage', 'PostgresStorage'];
const all: Kind[] = ['FileStorage', ...shared];

/** The error a storage's constructor throws for `extra` on top of its base options. */
function refusal(kind: Kind, extra: Record<string, unknown>): InvalidOptionsError {
  const options = { ...bases[kind], ...extra } as never;
  try {
    if (kind === 'FileStorage') new FileStorage(options);
    else if (kind === 'RedisStorage') new RedisStorage(options);
    else new PostgresStorage(options);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionsError);
    return error as InvalidOptionsError;
  }
  throw new Error(`${kind} accepted ${JSON.stringify(extra)}`);
}

/** The message without its `<Storage ...>: ` prefix, which names the instance. */
const unprefixed = (error: Error): string => error.message.slice(error.message.indexOf(': ') + 2);

describe('the options the durable storages share', () => {
  it('resolve to the same defaults everywhere', () => {
    const resolved = [
      resolveFileStorageOptions(bases.FileStorage),
      resolveRedisStorageOptions(bases.RedisStorage),
      resolvePostgresOptions(bases.PostgresStorage),
    ];
    for (const options of resolved) {
      expect(options.serializer).toBe(jsonSerializer);
      expect(options.maxRecordBytes).toBe(1024 * 1024);
      expect(options.onError).toBe(warnOnError);
    }
    for (const options of resolved.slice(1) as ReturnType<typeof resolvePostgresOptions>[]) {
      expect(options.leaseTimeout).toBe(STORAGE_DEFAULTS.leaseTimeout);
      expect(options.onUnavailable).toBe('reject');
      expect(options.unavailableTimeout).toBe(10_000);
    }
  });

  it.each<[string, Kind[], Record<string, unknown>, string]>([
    ['a zero maxRecordBytes', all, { maxRecordBytes: 0 }, 'maxRecordBytes'],
    ['a fractional maxRecordBytes', all, { maxRecordBytes: 1.5 }, 'maxRecordBytes'],
    ['a serializer without deserialize', all, { serializer: { serialize: String } }, 'serializer'],
    ['an onError that is not a function', all, { onError: 'log' }, 'onError'],
    ['a misspelt option', all, { onErorr: () => undefined }, 'onErorr'],
    ['a leaseTimeout under 50 ms', shared, { leaseTimeout: 49 }, 'leaseTimeout'],
    ['a fractional leaseTimeout', shared, { leaseTimeout: 100.5 }, 'leaseTimeout'],
    ['an unknown onUnavailable', shared, { onUnavailable: 'wait' }, 'onUnavailable'],
    [
      "an unavailableTimeout without onUnavailable: 'block'",
      shared,
      { unavailableTimeout: 1000 },
      'unavailableTimeout',
    ],
    [
      'a negative unavailableTimeout',
      shared,
      { onUnavailable: 'block', unavailableTimeout: -1 },
      'unavailableTimeout',
    ],
  ])('refuse %s in the same words', (_, kinds, extra, option) => {
    const messages = kinds.map((kind) => {
      const error = refusal(kind, extra);
      expect(error.option).toBe(option);
      expect(error.message.startsWith(kind)).toBe(true);
      return unprefixed(error);
    });
    expect(new Set(messages).size).toBe(1);
  });

  it('each bound maxRecordBytes by its own medium, and say so', () => {
    const limits = all.map((kind) => unprefixed(refusal(kind, { maxRecordBytes: 2 ** 40 })));
    expect(limits).toEqual([
      expect.stringMatching(/an integer from 1 to \d+ \(what a journal segment holds/),
      expect.stringMatching(/an integer from 1 to \d+ \(Redis's proto-max-bulk-len\)/),
      expect.stringMatching(/an integer from 1 to \d+ \(PostgreSQL's limit on a text value\)/),
    ]);
  });

  it('report by default as a process warning that keeps the error', () => {
    const emit = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const error = new Error('renewal failed');
      warnOnError(error);
      expect(emit).toHaveBeenCalledWith(error);
    } finally {
      emit.mockRestore();
    }
  });
});
