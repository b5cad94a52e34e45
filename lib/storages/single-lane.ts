import { UnsupportedError } from '../core/errors.js';
import type { AppendOptions, StorageFeatures } from '../core/storage.js';

/** What the durable storages declare: none of the optional features (no lanes, no coalescing). */
export const NO_FEATURES: StorageFeatures = Object.freeze({});

/**
 * Refuses an append to a priority lane other than 0 in a storage without `features.priority`.
 * The engine never asks for one (it refuses the `priority` option for such a storage); a direct
 * caller gets a clear error rather than its records stored as if they had no lane.
 *
 * @throws UnsupportedError naming the storage and the lane.
 */
export function assertSingleLane(storageName: string, options: AppendOptions | undefined): void {
  const lane = options?.lane;
  if (lane !== undefined && lane !== 0) {
    throw new UnsupportedError(
      `${storageName} has one lane (no features.priority): append got lane ${String(lane)}`,
    );
  }
}
