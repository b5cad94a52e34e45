import { afterEach, beforeEach, jest } from '@jest/globals';

type FakeTimersConfig = Parameters<typeof jest.useFakeTimers>[0];

/**
 * Runs every test of the enclosing `describe` (or file) on Jest's fake clock, and puts the real one
 * back after each, so that a test that fails half-way cannot leave the next one on fake time.
 */
export function fakeTimersInEachTest(config?: FakeTimersConfig): void {
  beforeEach(() => {
    jest.useFakeTimers(config);
  });
  afterEach(() => {
    jest.useRealTimers();
  });
}
