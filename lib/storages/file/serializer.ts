import { SerializationError } from '../../core/errors.js';

/**
 * Turns records into bytes for the journal and back. `serialize` may return a string (written as
 * UTF-8) or bytes; it throws, or returns `undefined`, for a record it cannot represent.
 * `deserialize` gets the bytes `serialize` produced, in a buffer it may keep.
 */
export interface Serializer<T> {
  serialize(record: T): string | Uint8Array;
  deserialize(data: Buffer): T;
}

/** The default: JSON text. Records must be JSON values; what JSON drops or alters does not survive. */
export const jsonSerializer: Serializer<never> = {
  serialize: (record) => JSON.stringify(record),
  deserialize: (data) => JSON.parse(data.toString('utf8')) as never,
};

/** The serialized form of one record of an append, with its size in bytes. */
export interface SerializedRecord {
  readonly payload: string | Uint8Array;
  readonly bytes: number;
}

/**
 * Serializes one record, turning every way it can fail into a `SerializationError` that says which
 * record and why.
 */
export function serializeRecord<T>(
  serializer: Serializer<T>,
  record: T,
  index: number,
  count: number,
): SerializedRecord {
  const which = count > 1 ? `record ${index} of ${count}` : 'the record';
  let payload: unknown;
  try {
    payload = serializer.serialize(record);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SerializationError(`FileStorage cannot serialize ${which}: ${reason}`, {
      cause: error,
    });
  }
  if (typeof payload === 'string') {
    return { payload, bytes: Buffer.byteLength(payload, 'utf8') };
  }
  if (payload instanceof Uint8Array) return { payload, bytes: payload.length };
  const got = payload === undefined ? 'undefined' : `a ${typeof payload}`;
  const hint =
    payload === undefined && serializer === (jsonSerializer as Serializer<unknown>)
      ? ` (JSON has no form for ${describeKind(record)})`
      : '';
  throw new SerializationError(
    `FileStorage cannot serialize ${which}: the serializer returned ${got}${hint}, expected a string or bytes`,
  );
}

function describeKind(record: unknown): string {
  if (typeof record === 'function') return 'a function';
  if (typeof record === 'symbol') return 'a symbol';
  if (record === undefined) return 'undefined';
  return 'this value';
}
