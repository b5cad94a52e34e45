import { InvalidOptionsError } from '../../core/errors.js';

/**
 * One part of a table name. Deliberately narrower than what PostgreSQL accepts: ASCII letters,
 * digits and underscores, not starting with a digit. Such a name cannot carry quotes, dots,
 * semicolons or whitespace, so no input can escape the quoting below.
 */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** PostgreSQL truncates identifiers longer than 63 bytes (NAMEDATALEN - 1). */
const MAX_IDENTIFIER_LENGTH = 63;

/**
 * The tables, indexes and constraints of a buffer are named after its table plus a suffix of at
 * most 12 characters (`_retry_due`, `_leases_pkey`; 0.2's `_reserve_idx`); keeping the table name
 * short keeps them under the 63-byte limit, so PostgreSQL never truncates them into clashes.
 */
const MAX_TABLE_LENGTH = MAX_IDENTIFIER_LENGTH - '_reserve_idx'.length;

/** A validated table name, optionally schema-qualified, with its quoted forms for SQL text. */
export interface TableName {
  /** The schema, when the name was qualified. */
  readonly schema: string | undefined;
  readonly table: string;
  /** `"schema"."table"` or `"table"`: the only form that is ever put into SQL text. */
  readonly quoted: string;
  /** Quotes a name derived from the table's own (an index name): `"table_suffix"`. */
  derived(suffix: string): string;
  /** A table (or index) beside this one, in the same schema: `"schema"."table_suffix"`. */
  sibling(suffix: string): string;
}

/**
 * Parses `table` or `schema.table`, refusing anything but plain identifiers. Names are quoted,
 * so they are case-sensitive: `Events` and `events` are different tables.
 *
 * @throws InvalidOptionsError naming the option, the value and the pattern allowed.
 */
export function parseTableName(value: unknown, context?: string): TableName {
  const option = 'table';
  const expected =
    `a table name or schema.table, each part matching ${IDENTIFIER.source} ` +
    `(schema at most ${MAX_IDENTIFIER_LENGTH} characters, table at most ${MAX_TABLE_LENGTH})`;
  if (typeof value !== 'string') throw new InvalidOptionsError(option, value, expected, context);
  const parts = value.split('.');
  if (parts.length > 2) throw new InvalidOptionsError(option, value, expected, context);
  const table = parts[parts.length - 1]!;
  const schema = parts.length === 2 ? parts[0]! : undefined;
  const valid =
    IDENTIFIER.test(table) &&
    table.length <= MAX_TABLE_LENGTH &&
    (schema === undefined || (IDENTIFIER.test(schema) && schema.length <= MAX_IDENTIFIER_LENGTH));
  if (!valid) throw new InvalidOptionsError(option, value, expected, context);
  return {
    schema,
    table,
    quoted: schema === undefined ? quote(table) : `${quote(schema)}.${quote(table)}`,
    derived: (suffix) => quote(`${table}${suffix}`),
    sibling: (suffix) =>
      schema === undefined
        ? quote(`${table}${suffix}`)
        : `${quote(schema)}.${quote(`${table}${suffix}`)}`,
  };
}

// The pattern admits no double quote, so wrapping is all the quoting needed; the check repeats
// the pattern so that this function can never be the one place an unchecked name gets through.
function quote(identifier: string): string {
  if (!IDENTIFIER.test(identifier)) {
    throw new InvalidOptionsError(
      'table',
      identifier,
      `an identifier matching ${IDENTIFIER.source}`,
    );
  }
  return `"${identifier}"`;
}
