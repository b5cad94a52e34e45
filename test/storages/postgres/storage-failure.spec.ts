import { describe, expect, it } from '@jest/globals';
import { StorageError, StorageUnavailableError } from '../../../lib/index.js';
import { isUnavailable, storageFailure } from '../../../lib/storages/postgres/storage-failure.js';

const withCode = (message: string, code: string): Error =>
  Object.assign(new Error(message), { code });

describe('PostgreSQL failures', () => {
  it.each([
    ['a refused connection', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['a reset connection', withCode('read ECONNRESET', 'ECONNRESET')],
    ['an unknown host', withCode('getaddrinfo ENOTFOUND db', 'ENOTFOUND')],
    [
      'a terminated backend (57P01)',
      withCode('terminating connection due to administrator command', '57P01'),
    ],
    ['a server starting up (57P03)', withCode('the database system is starting up', '57P03')],
    ['too many connections (53300)', withCode('sorry, too many clients already', '53300')],
    ['a connection exception (08006)', withCode('connection failure', '08006')],
    ['a lost connection', new Error('Connection terminated unexpectedly')],
    ['a connect timeout', new Error('timeout exceeded when trying to connect')],
    ['a client-side query timeout', new Error('Query read timeout')],
    [
      'a broken client',
      new Error('Client has encountered a connection error and is not queryable'),
    ],
    [
      'every address refused',
      new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], ''),
    ],
    ['a wrapped cause', new Error('pool failed', { cause: withCode('x', 'ECONNREFUSED') })],
    // As thrown by Node's sockets into a VM context (a test runner): not an `Error` of ours.
    ['an error from another realm', { message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' }],
  ])('treats %s as unavailability', (_, error) => {
    expect(isUnavailable(error)).toBe(true);
    const wrapped = storageFailure('append', '"events"', error);
    expect(wrapped).toBeInstanceOf(StorageUnavailableError);
    expect(wrapped.code).toBe('BUFIO_STORAGE_UNAVAILABLE');
    expect(wrapped.message).toMatch(
      /^PostgreSQL is unavailable: append on "events" failed \(.+\)$/,
    );
    expect(wrapped.cause).toBe(error);
  });

  it.each([
    ['a unique violation (23505)', withCode('duplicate key value', '23505')],
    ['a syntax error (42601)', withCode('syntax error at or near "x"', '42601')],
    ['a permission error (42501)', withCode('permission denied for table events', '42501')],
    ['a disk full (53100)', withCode('could not extend file', '53100')],
    ['a plain value', 'boom'],
    ['null', null],
  ])('treats %s as a failure of the statement, not of the server', (_, error) => {
    expect(isUnavailable(error)).toBe(false);
    const wrapped = storageFailure('reserve', '"events"', error);
    expect(wrapped).toBeInstanceOf(StorageError);
    expect(wrapped.code).toBe('BUFIO_STORAGE_FAILED');
    expect(wrapped.message).toMatch(/^PostgreSQL reserve on "events" failed \(.+\)$/);
  });

  it('names the SQLSTATE when the message does not', () => {
    const wrapped = storageFailure('ack', '"events"', withCode('duplicate key value', '23505'));
    expect(wrapped.message).toContain('23505: duplicate key value');
  });

  it('says how to create a missing table', () => {
    const wrapped = storageFailure(
      'size',
      '"s"."events"',
      withCode('relation "s.events" does not exist', '42P01'),
    );
    expect(wrapped.message).toContain('table "s"."events" does not exist');
    expect(wrapped.message).toContain('migrate()');
    expect(wrapped.message).toContain('createTable');
    // One of the tables the storage keeps beside it: named as PostgreSQL names it.
    const sibling = storageFailure(
      'append',
      '"s"."events"',
      withCode('relation "s.events_meta" does not exist', '42P01'),
    );
    expect(sibling.message).toContain(
      'table "s.events_meta" does not exist; create it with migrate()',
    );
  });

  it('passes BufIO errors through unchanged', () => {
    const original = new StorageUnavailableError('already clear');
    expect(storageFailure('append', '"events"', original)).toBe(original);
  });
});
