// A stand-in for a batch API the README's snippets call.

export interface Coordinates {
  lat: number;
  lng: number;
}

/** Answers one set of coordinates per address, in order. */
export declare const geocodingApi: {
  batchLookup(addresses: readonly string[]): Promise<Coordinates[]>;
};
