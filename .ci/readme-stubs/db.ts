// Stand-ins for the application code that the README's snippets import: declared, not written.

/** A record of the examples. */
export interface Event {
  type: string;
  userId: string;
  at: number;
}

/** A named counter, for the coalescing examples. */
export interface Counter {
  name: string;
  value: number;
}

/** The application's database client. */
export declare const db: {
  insertMany(rows: readonly Event[]): Promise<void>;
  upsertCounters(rows: readonly Counter[]): Promise<void>;
};
