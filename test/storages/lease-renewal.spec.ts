import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { LeaseRenewal } from '../../lib/storages/lease-renewal.js';
import { deferred } from '../support/workers.js';

describe('LeaseRenewal', () => {
  let renewals: string[][];
  let reported: unknown[];
  let renew: (ids: readonly string[]) => Promise<void>;

  beforeEach(() => {
    jest.useFakeTimers();
    renewals = [];
    reported = [];
    renew = async () => undefined;
  });

  afterEach(() => {
    expect(jest.getTimerCount()).toBe(0);
    jest.useRealTimers();
  });

  function renewal(leaseTimeout = 300): LeaseRenewal {
    return new LeaseRenewal({
      leaseTimeout,
      renew: (ids) => {
        renewals.push([...ids]);
        return renew(ids);
      },
      report: (error) => reported.push(error),
    });
  }

  it('runs no timer while nothing is held', () => {
    const leases = renewal();
    expect(jest.getTimerCount()).toBe(0);
    leases.hold([]);
    expect(jest.getTimerCount()).toBe(0);
    leases.stop();
  });

  it('renews what is held every third of leaseTimeout, and stops once nothing is', async () => {
    const leases = renewal(300);
    leases.hold(['a', 'b']);
    await jest.advanceTimersByTimeAsync(99);
    expect(renewals).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(renewals).toEqual([['a', 'b']]);
    leases.forget(['a']);
    leases.hold(['c']);
    await jest.advanceTimersByTimeAsync(100);
    expect(renewals).toEqual([
      ['a', 'b'],
      ['b', 'c'],
    ]);
    expect(leases.size).toBe(2);
    leases.forget(['b', 'c']);
    expect(jest.getTimerCount()).toBe(0);
    await jest.advanceTimersByTimeAsync(1000);
    expect(renewals).toHaveLength(2);
  });

  it('never runs two renewals at once', async () => {
    const slow = deferred();
    renew = () => slow.promise;
    const leases = renewal(30);
    leases.hold(['a']);
    await jest.advanceTimersByTimeAsync(100);
    expect(renewals).toHaveLength(1);
    slow.resolve();
    await jest.advanceTimersByTimeAsync(10);
    expect(renewals).toHaveLength(2);
    leases.stop();
  });

  it('reports the first failure of an outage, not every tick of it, and the next one after', async () => {
    let failing = true;
    renew = async () => {
      if (failing) throw new Error('unreachable');
    };
    const leases = renewal(30);
    leases.hold(['a']);
    await jest.advanceTimersByTimeAsync(50);
    expect(renewals.length).toBeGreaterThanOrEqual(4);
    expect(reported).toEqual([new Error('unreachable')]);
    failing = false;
    await jest.advanceTimersByTimeAsync(10);
    failing = true;
    await jest.advanceTimersByTimeAsync(30);
    expect(reported).toHaveLength(2);
    leases.stop();
  });

  it('stop() forgets every lease, clears the timer for good and says how many were held', async () => {
    const leases = renewal();
    leases.hold(['a', 'b', 'c']);
    expect(leases.stop()).toBe(3);
    expect(leases.size).toBe(0);
    leases.hold(['d']);
    expect(jest.getTimerCount()).toBe(0);
    await jest.advanceTimersByTimeAsync(1000);
    expect(renewals).toEqual([]);
  });
});
