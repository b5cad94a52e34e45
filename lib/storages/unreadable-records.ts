import type { ReserveOptions, UnreadableRecord } from '../core/storage.js';

/**
 * After a storage set aside records it could not deserialize (so that they no longer block the
 * buffer): hands them to the engine's `onUnreadable`, or, when the caller gave none, reports
 * `fallback()` through `onError`. A throwing `onUnreadable` is reported, never thrown.
 */
export function announceUnreadable(
  records: readonly UnreadableRecord[],
  onUnreadable: ReserveOptions['onUnreadable'],
  report: (error: unknown) => void,
  fallback: () => readonly Error[],
): void {
  if (onUnreadable) {
    try {
      onUnreadable(records);
    } catch (error) {
      report(error);
    }
    return;
  }
  for (const error of fallback()) report(error);
}
