import { describe, expect, it } from '@jest/globals';
import { RecordTooLargeError, SerializationError } from '../../lib/core/errors.js';
import * as file from '../../lib/storages/file/index.js';
import * as postgres from '../../lib/storages/postgres/index.js';
import * as redis from '../../lib/storages/redis/index.js';
import { encodeRecords, jsonSerializer, type Serializer } from '../../lib/storages/serializer.js';

const serialize = (record: unknown): string =>
  (jsonSerializer as Serializer<unknown>).serialize(record);

/** The error `serialize` throws for `record`, or a failure if it does not throw. */
function refusal(record: unknown): Error {
  try {
    serialize(record);
  } catch (error) {
    return error as Error;
  }
  throw new Error(`expected ${String(record)} to be refused`);
}

describe('jsonSerializer', () => {
  it('is the one serializer every durable storage exports', () => {
    expect(file.jsonSerializer).toBe(jsonSerializer);
    expect(redis.jsonSerializer).toBe(jsonSerializer);
    expect(postgres.jsonSerializer).toBe(jsonSerializer);
  });

  it('round-trips JSON values, as JSON.stringify writes them', () => {
    const record = {
      n: 1,
      text: 'é ✓ \u0000 \ud800',
      list: [1, 'two', null, { deep: [true] }],
      at: new Date('2026-01-02T03:04:05.006Z'),
      gone: undefined,
    };
    const text = serialize(record);
    expect(text).toBe(JSON.stringify(record));
    expect(jsonSerializer.deserialize(text)).toEqual({
      n: 1,
      text: 'é ✓ \u0000 \ud800',
      list: [1, 'two', null, { deep: [true] }],
      at: '2026-01-02T03:04:05.006Z',
    });
  });

  it.each<[string, unknown, RegExp]>([
    ['undefined as the record', undefined, /^JSON has no form for undefined$/],
    ['a function as the record', () => 1, /^JSON has no form for a function$/],
    ['a symbol as the record', Symbol('s'), /^JSON has no form for a symbol$/],
    ['a nested function', { a: { b: () => 1 } }, /no form for a function \(at \.a\.b\)$/],
    ['a symbol in an array', { list: [1, [2, Symbol('x')]] }, /a symbol \(at \.list\[1\]\[1\]\)$/],
    ['a method on a plain object', { n: 1, later() {} }, /a function \(at \.later\)$/],
    ['a BigInt anywhere', { a: [{ b: 10n }] }, /BigInt/],
    [
      'a cycle',
      (() => {
        const o: Record<string, unknown> = {};
        o.self = { back: o };
        return o;
      })(),
      /circular/i,
    ],
    [
      'a function behind a custom toJSON',
      { wrapped: { toJSON: () => ({ fn: () => 1 }) } },
      /a function \(at key "fn"\)$/,
    ],
  ])('refuses %s, saying what and where', (_, record, message) => {
    const error = refusal(record);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(message);
  });

  it('accepts what a custom toJSON turns into JSON, and class instances by their own fields', () => {
    class Money {
      constructor(readonly cents: number) {}
      format(): string {
        return `${this.cents / 100}`;
      }
    }
    const record = { price: new Money(150), id: { toJSON: () => 'ID-1' } };
    expect(serialize(record)).toBe('{"price":{"cents":150},"id":"ID-1"}');
  });

  it('finds a function however deep it sits', () => {
    let deep: Record<string, unknown> = { fn: () => 1 };
    for (let i = 0; i < 2000; i++) deep = { next: deep };
    expect(refusal(deep).message).toMatch(/no form for a function/);
  });
});

describe('encodeRecords', () => {
  const options = { serializer: jsonSerializer, maxRecordBytes: 1024, storageName: 'TestStorage' };

  it('serializes every record, in order', () => {
    expect(encodeRecords([{ n: 1 }, 'two', 3], options)).toEqual(['{"n":1}', '"two"', '3']);
  });

  it('names the storage, the record and the cause, keeping the cause', () => {
    let error: unknown;
    try {
      encodeRecords([{ n: 0 }, { n: 1, big: 2n }, { n: 2 }], options);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SerializationError);
    expect((error as SerializationError).code).toBe('BUFIO_SERIALIZATION');
    expect((error as Error).message).toMatch(
      /^TestStorage cannot serialize the record at index 1 of 3: .*BigInt/,
    );
    expect((error as Error).cause).toBeInstanceOf(TypeError);
    expect(() => encodeRecords([undefined], options)).toThrow(
      'TestStorage cannot serialize the record: JSON has no form for undefined',
    );
  });

  it('refuses what a custom serializer returns when it is not a string', () => {
    const bad: Serializer<unknown> = { serialize: () => undefined as never, deserialize: String };
    expect(() => encodeRecords(['x'], { ...options, serializer: bad })).toThrow(
      'TestStorage cannot serialize the record: the serializer returned undefined, not a string',
    );
    const bytes: Serializer<unknown> = {
      serialize: () => Buffer.from('x') as never,
      deserialize: String,
    };
    expect(() => encodeRecords(['x', 'y'], { ...options, serializer: bytes })).toThrow(
      'the record at index 0 of 2: the serializer returned an object, not a string',
    );
  });

  it('checks the text of a custom serializer only: a lone surrogate, and the storage hook', () => {
    const raw: Serializer<string> = { serialize: (s) => s, deserialize: (s) => s };
    const checked: string[] = [];
    const checkText = (text: string): string | undefined => {
      checked.push(text);
      return text.includes('!') ? 'it shouts' : undefined;
    };
    expect(() => encodeRecords(['a\ud800'], { ...options, serializer: raw, checkText })).toThrow(
      'TestStorage cannot store the record: its serialized text contains a lone UTF-16 surrogate',
    );
    expect(() => encodeRecords(['ok', 'no!'], { ...options, serializer: raw, checkText })).toThrow(
      'TestStorage cannot store the record at index 1 of 2: it shouts',
    );
    expect(encodeRecords(['fine'], { ...options, serializer: raw, checkText })).toEqual(['fine']);
    checked.length = 0;
    // The default's output is escaped JSON: no hook, no surrogate scan.
    expect(encodeRecords(['no!\ud800'], { ...options, checkText })).toEqual(['"no!\\ud800"']);
    expect(checked).toEqual([]);
  });

  it('enforces maxRecordBytes in UTF-8 bytes, the limit itself included', () => {
    // JSON of 'é'.repeat(5) is 2 quotes + 10 bytes.
    expect(encodeRecords(['é'.repeat(5)], { ...options, maxRecordBytes: 12 })).toHaveLength(1);
    let error: unknown;
    try {
      encodeRecords(['a', 'é'.repeat(6)], { ...options, maxRecordBytes: 12 });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RecordTooLargeError);
    expect((error as Error).message).toBe('record is 14 bytes, over maxRecordBytes (12)');
  });
});
