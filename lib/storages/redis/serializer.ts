import { RecordTooLargeError, SerializationError } from '../../core/errors.js';

/**
 * Turns records into the text stored in Redis and back. The text is stored as it is, so a
 * serializer need not produce JSON, and `maxBatchBytes` and `maxRecordBytes` count exactly the
 * UTF-8 bytes it produced.
 */
export interface Serializer<T> {
  /** Text for one record. Throw, or return a non-string, to refuse the record. */
  serialize(record: T): string;
  /** The record back from the text `serialize` produced, possibly in another process. */
  deserialize(text: string): T;
}

// A function or symbol anywhere in a record would silently vanish from its JSON, so that the
// worker would get a different record than was pushed: refuse it instead.
function strictJson(_key: string, value: unknown): unknown {
  if (typeof value === 'function') throw new TypeError('a function cannot be serialized as JSON');
  if (typeof value === 'symbol') throw new TypeError('a symbol cannot be serialized as JSON');
  return value;
}

/**
 * The default: JSON. Records come back as plain JSON values: a `Date` becomes its ISO string,
 * `undefined` properties disappear, `Map`/`Set` become `{}`. A `BigInt`, a cycle, a function or a
 * symbol anywhere in the record is refused with `SerializationError`.
 */
export const jsonSerializer: Serializer<never> = {
  serialize: (record) => JSON.stringify(record, strictJson),
  deserialize: (text) => JSON.parse(text) as never,
};

/**
 * Serializes every record of one `append` up front, so that a bad record fails its call at once
 * and nothing of that call is written; the texts are also a snapshot, unaffected by later
 * mutation of the records.
 *
 * @throws SerializationError when the serializer throws, returns something other than a string, or
 * (a custom one) returns text with a lone surrogate, which would not survive UTF-8 unchanged.
 * @throws RecordTooLargeError when a record's text is longer than `maxRecordBytes` in UTF-8.
 */
export function encodeRecords<T>(
  records: readonly T[],
  serializer: Serializer<T>,
  maxRecordBytes: number,
): string[] {
  // JSON.stringify escapes lone surrogates; a custom serializer may not.
  const trusted = serializer === (jsonSerializer as Serializer<unknown>);
  const texts = new Array<string>(records.length);
  for (let i = 0; i < records.length; i++) {
    const at = records.length > 1 ? ` (record ${i} of ${records.length})` : '';
    let text: unknown;
    try {
      text = serializer.serialize(records[i] as T);
    } catch (error) {
      throw new SerializationError(
        `record could not be serialized${at}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    if (typeof text !== 'string') {
      throw new SerializationError(
        `record could not be serialized${at}: the serializer returned ${text === undefined ? 'undefined' : typeof text}, not a string`,
      );
    }
    if (!trusted && !(text as unknown as { isWellFormed(): boolean }).isWellFormed()) {
      throw new SerializationError(
        `record could not be stored${at}: its serialized text contains a lone UTF-16 surrogate, which UTF-8 cannot hold unchanged`,
      );
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
