import { asError, RecordTooLargeError, SerializationError } from '../core/errors.js';

/**
 * Turns records into text for a durable storage and back. Every durable storage keeps the text as
 * it is, in UTF-8 (a journal frame, a Redis stream entry, a PostgreSQL `text` column), so a
 * serializer need not produce JSON, and `maxRecordBytes` and `maxBatchBytes` count exactly the
 * UTF-8 bytes of the text it produced.
 */
export interface Serializer<T> {
  /** Text for one record. Throw, or return something other than a string, to refuse the record. */
  serialize(record: T): string;
  /** The record back from the text `serialize` produced, possibly in another process. */
  deserialize(text: string): T;
}

/**
 * The default serializer: JSON, strict. Records come back as plain JSON values: a `Date` becomes
 * its ISO string, `undefined` properties disappear, `NaN` and `Infinity` become `null`, a `Map` or
 * a `Set` becomes `{}`. What JSON would lose without a trace is refused instead, so that the worker
 * never gets a different record than was pushed: a `BigInt`, a cycle, a function or a symbol
 * anywhere in the record, and `undefined` as the record. The error names the cause and where in
 * the record it is.
 *
 * Typed `Serializer<never>` so that it fits a storage of any record type.
 */
export const jsonSerializer: Serializer<never> = {
  serialize: (record) => strictJson(record),
  deserialize: (text) => JSON.parse(text) as never,
};

function strictJson(record: unknown): string {
  // Cycles and BigInts make JSON.stringify throw on its own. Its fast path runs first; a walk after
  // it, over the paths it followed, costs much less than a replacer function would.
  const text = JSON.stringify(record) as string | undefined;
  if (text === undefined) throw new TypeError(`JSON has no form for ${kindOf(record)}`);
  const found = scan(record, 0);
  if (found === LOST) throw new TypeError(describeLost(record));
  // A custom toJSON decides what is written: let JSON.stringify show its results to a replacer.
  if (found === RECHECK) JSON.stringify(record, refuseLost);
  return text;
}

const CLEAN = 0;
const LOST = 1;
const RECHECK = 2;
type Scan = typeof CLEAN | typeof LOST | typeof RECHECK;

/** Deeper than this, the walk hands over to the replacer rather than grow the stack further. */
const MAX_WALK_DEPTH = 500;

/**
 * Whether a function or symbol that JSON.stringify dropped sits in `value`, or (`RECHECK`) a
 * `toJSON` other than `Date`'s is in the way. Only called on values that JSON.stringify has just
 * walked without error, so the paths it follows have no cycle.
 */
function scan(value: unknown, depth: number): Scan {
  if (value === null || typeof value !== 'object' || value instanceof Date) return CLEAN;
  if (depth > MAX_WALK_DEPTH || typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return RECHECK;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = scanItem(value[i], depth);
      if (found !== CLEAN) return found;
    }
    return CLEAN;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const found = scanItem((value as Record<string, unknown>)[key], depth);
    if (found !== CLEAN) return found;
  }
  return CLEAN;
}

function scanItem(item: unknown, depth: number): Scan {
  const type = typeof item;
  if (type === 'function' || type === 'symbol') return LOST;
  return type === 'object' ? scan(item, depth + 1) : CLEAN;
}

/** The message for a value `scan` found LOST in: what was dropped, and its path. */
function describeLost(record: unknown): string {
  let value: unknown = record;
  let path = '';
  descend: while (value !== null && typeof value === 'object') {
    const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
    for (const key of keys) {
      const item = (value as Record<string | number, unknown>)[key];
      const step = typeof key === 'number' ? `[${key}]` : `.${key}`;
      if (typeof item === 'function' || typeof item === 'symbol') {
        return `JSON has no form for ${kindOf(item)} (at ${path}${step})`;
      }
      if (typeof item === 'object' && item !== null && scan(item, 0) === LOST) {
        value = item;
        path += step;
        continue descend;
      }
    }
    break;
  }
  // Only if a getter answered differently the second time.
  return 'JSON has no form for a function or symbol in the record';
}

function refuseLost(key: string, value: unknown): unknown {
  const type = typeof value;
  if (type === 'function' || type === 'symbol') {
    throw new TypeError(`JSON has no form for ${kindOf(value)} (at key ${JSON.stringify(key)})`);
  }
  return value;
}

function kindOf(value: unknown): string {
  if (value === undefined) return 'undefined';
  const type = typeof value;
  return type === 'function' ? 'a function' : type === 'symbol' ? 'a symbol' : `this ${type}`;
}

/** What `encodeRecords` needs. */
export interface EncodeOptions<T> {
  readonly serializer: Serializer<T>;
  /** Largest text accepted, in UTF-8 bytes. */
  readonly maxRecordBytes: number;
  /** Named in error messages, e.g. `'FileStorage'`. */
  readonly storageName?: string;
  /**
   * A storage's own limit on the text of a custom serializer: returns why `text` cannot be stored
   * unchanged, or undefined when it can. Not called for `jsonSerializer`, whose output is plain
   * escaped ASCII where it matters (no NUL, no lone surrogate).
   */
  readonly checkText?: (text: string) => string | undefined;
}

/** A storage's encoding: its serializer and `maxRecordBytes`, and its name for error messages. */
export function encodingOf<T>(
  options: { readonly serializer: Serializer<T>; readonly maxRecordBytes: number },
  storageName: string,
  checkText?: (text: string) => string | undefined,
): EncodeOptions<T> {
  const { serializer, maxRecordBytes } = options;
  return checkText
    ? { serializer, maxRecordBytes, storageName, checkText }
    : { serializer, maxRecordBytes, storageName };
}

/**
 * Serializes every record of one `append` up front, so that a bad record fails its call before
 * anything of it is written; the texts are also a snapshot, unaffected by later mutation of the
 * records.
 *
 * @throws SerializationError when the serializer throws or returns something other than a
 * string, or (a custom serializer) returns text that UTF-8 cannot hold unchanged (a lone UTF-16
 * surrogate) or that `checkText` refuses. The message names the record's index in the call and the
 * cause; the serializer's own error is the `cause`.
 * @throws RecordTooLargeError when a record's text is longer than `maxRecordBytes` in UTF-8.
 */
export function encodeRecords<T>(records: readonly T[], options: EncodeOptions<T>): string[] {
  const { serializer, maxRecordBytes, checkText } = options;
  const trusted = serializer === (jsonSerializer as Serializer<unknown>);
  const texts = new Array<string>(records.length);
  for (let i = 0; i < records.length; i++) {
    let text: unknown;
    try {
      text = serializer.serialize(records[i]!);
    } catch (error) {
      throw new SerializationError(
        `${cannot(options, 'serialize', i, records.length)}: ${messageOf(error)}`,
        { cause: error },
      );
    }
    if (typeof text !== 'string') {
      throw new SerializationError(
        `${cannot(options, 'serialize', i, records.length)}: the serializer returned ${kindOfResult(text)}, not a string`,
      );
    }
    if (!trusted) {
      const refused = !(text as unknown as { isWellFormed(): boolean }).isWellFormed()
        ? 'its serialized text contains a lone UTF-16 surrogate, which UTF-8 cannot hold unchanged'
        : checkText?.(text);
      if (refused !== undefined) {
        throw new SerializationError(`${cannot(options, 'store', i, records.length)}: ${refused}`);
      }
    }
    // Cheap bound first: a UTF-16 unit is at most 3 bytes of UTF-8.
    if (text.length * 3 > maxRecordBytes) {
      const bytes = Buffer.byteLength(text, 'utf8');
      if (bytes > maxRecordBytes) throw new RecordTooLargeError(bytes, maxRecordBytes);
    }
    texts[i] = text;
  }
  return texts;
}

function cannot(
  options: EncodeOptions<unknown>,
  verb: string,
  index: number,
  count: number,
): string {
  const which = count > 1 ? `the record at index ${index} of ${count}` : 'the record';
  return `${options.storageName ?? 'storage'} cannot ${verb} ${which}`;
}

function kindOfResult(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  return /^[aeiou]/.test(typeof value) ? `an ${typeof value}` : `a ${typeof value}`;
}

function messageOf(error: unknown): string {
  return asError(error).message;
}
