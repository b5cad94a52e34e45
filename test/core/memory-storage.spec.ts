import { describe, it } from '@jest/globals';
import { MemoryStorage } from '../../lib/index.js';
import { describeStorageConformance } from '../../lib/testing/index.js';

describeStorageConformance(
  'MemoryStorage',
  { create: () => new MemoryStorage() },
  { describe, it },
);
