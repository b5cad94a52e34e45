import { RecordTooLargeError, SerializationError } from '../../core/errors.js';

/**
 * Turns records into text for the `payload` column and back. The text is stored as it is
 * (`text`, not `jsonb`), so a serializer need not produce JSON, and `maxBatchBytes` counts exactly
 * the bytes it produced.
 */
export interface Serializer<T> {
  /** Text for one record. Throw, or return a non-string, to refuse the record. */
  serialize(record: T): string;
  /** The record back from the text `serialize` produced, possibly in another process. */
  deserialize(text: string): T;
}

const JSON_TEXT: Serializer<unknown> = {
  serialize: (record) => JSON.stringify(record),
  deserialize: (text) => JSON.parse(text) as unknown,
};

/**
 * The default: `JSON.stringify` / `JSON.parse`. Records come back as plain JSON values: a `Date`
 * becomes its ISO string, `undefined` properties disappear, `Map`/`Set` become `{}`. A `BigInt`, a
 * cycle, a function or `undefined` as the record is refused with `SerializationError`.
 */
export function jsonSerializer<T>(): Serializer<T> {
  return JSON_TEXT as Serializer<T>;
}

/** What `encodeRecords` needs to know. */
export interface EncodeOptions<T> {
  readonly serializer: Serializer<T>;
  readonly maxRecordBytes: number;
  /** Whether the serializer is the default one, whose output needs no text-safety check. */
  readonly trusted: boolean;
}

/**
 * Serializes every record up front, so that a bad record fails its `append` at once and nothing
 * of that call is written; the texts are also a snapshot, unaffected by later mutation.
 *
 * @throws SerializationError when the serializer throws or gives something PostgreSQL's `text`
 * cannot hold unchanged.
 * @throws RecordTooLargeError when a record's text is longer than `maxRecordBytes` in UTF-8.
 */
export function encodeRecords<T>(records: readonly T[], options: EncodeOptions<T>): string[] {
  const texts = new Array<string>(records.length);
  for (let i = 0; i < records.length; i++) {
    const at = records.length > 1 ? ` (record ${i} of ${records.length})` : '';
    let text: unknown;
    try {
      text = options.serializer.serialize(records[i] as T);
    } catch (error) {
      throw new SerializationError(`record could not be serialized${at}: ${messageOf(error)}`, {
        cause: error,
      });
    }
    if (typeof text !== 'string') {
      throw new SerializationError(
        `record could not be serialized${at}: the serializer returned ${typeof text}, not a string`,
      );
    }
    if (!options.trusted) checkStorableText(text, at);
    // Cheap upper bound first: a UTF-8 byte is at most 3 per UTF-16 unit.
    if (text.length * 3 > options.maxRecordBytes) {
      const bytes = Buffer.byteLength(text, 'utf8');
      if (bytes > options.maxRecordBytes)
        throw new RecordTooLargeError(bytes, options.maxRecordBytes);
    }
    texts[i] = text;
  }
  return texts;
}

/**
 * PostgreSQL `text` refuses NUL characters, and a lone UTF-16 surrogate would be stored as U+FFFD:
 * refuse both rather than fail a whole burst or change the record. `JSON.stringify` escapes both,
 * so only custom serializers are checked.
 */
function checkStorableText(text: string, at: string): void {
  if (text.includes('\u0000')) {
    throw new SerializationError(
      `record could not be stored${at}: its serialized text contains a NUL character, which PostgreSQL text cannot hold`,
    );
  }
  if (!(text as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    throw new SerializationError(
      `record could not be stored${at}: its serialized text contains a lone UTF-16 surrogate, which is not valid UTF-8`,
    );
  }
}

function messageOf(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(error);
}
