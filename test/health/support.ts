import { MemoryStorage, StorageUnavailableError } from '../../lib/index.js';

/** A `MemoryStorage` whose `size()` can be made to fail, as a storage whose server is gone, or hang. */
export class SwitchableStorage<T> extends MemoryStorage<T> {
  mode: 'ok' | 'unavailable' | 'hang' = 'ok';

  override size(): number {
    if (this.mode === 'unavailable') {
      throw new StorageUnavailableError(
        'Redis at 127.0.0.1:6379 is unavailable: connect ECONNREFUSED',
      );
    }
    if (this.mode === 'hang') return new Promise<number>(() => {}) as unknown as number;
    return super.size();
  }
}
