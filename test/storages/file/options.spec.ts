import { describe, expect, it } from '@jest/globals';
import { InvalidOptionsError } from '../../../lib/core/errors.js';
import { FileStorage, type FileStorageOptions } from '../../../lib/storages/file/index.js';
import type { Rec } from './support.js';

/*
 * FileStorage: what it declares, and its options, checked at construction.
 */

describe('FileStorage', () => {
  it('declares itself durable and not shared', async () => {
    const storage = new FileStorage<Rec>({ directory: '/nonexistent/never-opened' });
    expect(storage.durable).toBe(true);
    expect(storage.shared).toBe(false);
    expect(storage.directory).toBe('/nonexistent/never-opened');
    await storage.close();
  });

  describe('options', () => {
    const cases: [string, unknown, string, string][] = [
      ['a missing directory', {}, 'directory', 'undefined'],
      ['an empty directory', { directory: '' }, 'directory', '""'],
      ['a non-string directory', { directory: 42 }, 'directory', '42'],
      ['an unknown durability', { directory: 'd', durability: 'always' }, 'durability', '"always"'],
      ['a tiny segmentBytes', { directory: 'd', segmentBytes: 100 }, 'segmentBytes', '100'],
      [
        'a fractional segmentBytes',
        { directory: 'd', segmentBytes: 4096.5 },
        'segmentBytes',
        '4096.5',
      ],
      [
        'a huge segmentBytes',
        { directory: 'd', segmentBytes: 2 ** 40 },
        'segmentBytes',
        String(2 ** 40),
      ],
      ['a zero maxRecordBytes', { directory: 'd', maxRecordBytes: 0 }, 'maxRecordBytes', '0'],
      [
        'a serializer without deserialize',
        { directory: 'd', serializer: { serialize: String } },
        'serializer',
        '',
      ],
      ['a non-function onRecovery', { directory: 'd', onRecovery: 'yes' }, 'onRecovery', '"yes"'],
      ['an unknown option', { directory: 'd', dir: '/tmp' }, 'dir', '"/tmp"'],
    ];
    it.each(cases)('refuses %s with InvalidOptionsError', (_label, options, option, value) => {
      let error: unknown;
      try {
        new FileStorage(options as FileStorageOptions<Rec>);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error).toMatchObject({ code: 'BUFIO_INVALID_OPTIONS', option });
      expect((error as Error).message).toContain(
        `FileStorage: invalid option "${option}": got ${value}`,
      );
    });

    it('refuses a missing options object', () => {
      expect(() => new FileStorage(undefined as unknown as FileStorageOptions<Rec>)).toThrow(
        /invalid option "options": got undefined, expected an object/,
      );
    });
  });
});
