import { asError, SerializationError } from '../../core/errors.js';
import type { ReserveOptions, UnreadableRecord } from '../../core/storage.js';
import { announceUnreadable } from '../unreadable-records.js';
import type { BufferContext } from './batch-reads.js';
import type { HeldLeases } from './held-leases.js';
import { SET_ASIDE } from './scripts.js';

/** What `setAside` needs from its storage. */
export interface SetAsideContext extends Pick<BufferContext, 'group' | 'script'> {
  readonly leases: HeldLeases;
  /** The storage's buffer name and its `invalid` key, for messages. */
  readonly name: string;
  readonly invalidKey: string;
  report(error: unknown): void;
}

/**
 * A stored record that cannot be deserialized must not block the buffer: moves it to the hash
 * `keys.invalid`, out of the buffer, and reports it (`onUnreadable`, or `onError` without it). If
 * the move fails, the records stay leased without renewal: they come back after `leaseTimeout` and
 * are tried again.
 */
export async function setAside(
  records: readonly UnreadableRecord[],
  onUnreadable: ReserveOptions['onUnreadable'],
  context: SetAsideContext,
): Promise<void> {
  const { leases, group, name, invalidKey, report } = context;
  leases.forget(records.map((record) => String(record.id)));
  try {
    await context.script('reserve', SET_ASIDE, [
      group,
      ...records.flatMap((record) => [String(record.id), String(record.payload)]),
    ]);
  } catch (error) {
    report(error);
    return;
  }
  announceUnreadable(records, onUnreadable, report, () =>
    records.map(
      ({ id, cause }) =>
        new SerializationError(
          `record ${id} of RedisStorage "${name}" could not be deserialized and was moved to "${invalidKey}": ${asError(cause).message}`,
          { cause },
        ),
    ),
  );
}
