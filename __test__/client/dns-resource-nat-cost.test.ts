// The cost claim of DESIGN §3.2, shown without timing: work per input must not grow with the number of
// confirmed or failed entries, and must grow at most logarithmically with the number of pending ones.
//
// Two independent instruments, so that a scanning implementation cannot pass by accident:
// - the machine's own counters (`entryVisits`, `deadlineComparisons`), compared between a machine with 100
//   entries and one with 100,000 that receive the same input;
// - a spy on iteration of every Map and Set, which records the largest collection any code walked during the
//   input. A scan over all entries (the naive "check all of them") walks a collection of n elements.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DnsResourceNat, type DnsResourceNatCounters } from '../../ts/client/dns-resource-nat.js';
import { drain, IPS } from './support/nat-helpers.js';

const BIG = 100_000;
const SMALL = 100;

/** `n` entries, half confirmed and half failed, plus `pendingCount` pending ones sent at time 0. */
function populated(n: number, pendingCount: number): DnsResourceNat {
  const nat = new DnsResourceNat();
  for (let i = 0; i < n; i++) {
    const domain = `host-${i}.corp.example`;
    nat.onDnsQuery(domain, [{ gatewayId: 'gw1', resourceId: 'web', proxyIps: IPS }], 0);
    const status = i % 2 === 0 ? 'active' : 'inactive';
    nat.onDomainStatus('gw1', { domain, resourceId: 'web', status, seq: nat.counters().sends }, 0);
  }
  for (let i = 0; i < pendingCount; i++) {
    nat.onDnsQuery(`pending-${i}.corp.example`, [{ gatewayId: 'gw1', resourceId: 'web', proxyIps: IPS }], 0);
  }
  drain(nat);
  return nat;
}

function cost(nat: DnsResourceNat, input: () => void): { visits: number; comparisons: number } {
  const before: DnsResourceNatCounters = nat.counters();
  input();
  const after = nat.counters();
  return {
    visits: after.entryVisits - before.entryVisits,
    comparisons: after.deadlineComparisons - before.deadlineComparisons,
  };
}

// --- iteration spy -----------------------------------------------------------------------------------------
type Iterating = 'values' | 'keys' | 'entries' | 'forEach';
const restorers: Array<() => void> = [];
let largestIterated = 0;

function spyOnIteration(): void {
  for (const proto of [Map.prototype, Set.prototype] as unknown as Array<Record<string | symbol, unknown>>) {
    for (const name of ['values', 'keys', 'entries', 'forEach', Symbol.iterator] as Array<
      Iterating | typeof Symbol.iterator
    >) {
      const original = proto[name] as (this: { size: number }, ...args: unknown[]) => unknown;
      proto[name] = function (this: { size: number }, ...args: unknown[]) {
        largestIterated = Math.max(largestIterated, this.size);
        return original.apply(this, args);
      };
      restorers.push(() => {
        proto[name] = original;
      });
    }
  }
}

function largestIterationDuring(input: () => void): number {
  largestIterated = 0;
  spyOnIteration();
  try {
    input();
  } finally {
    for (const restore of restorers.splice(0)) restore();
  }
  return largestIterated;
}

afterEach(() => {
  for (const restore of restorers.splice(0)) restore();
});

describe('cost per input does not grow with confirmed or failed entries', () => {
  let big: DnsResourceNat;
  let small: DnsResourceNat;
  beforeAll(() => {
    big = populated(BIG, 3);
    small = populated(SMALL, 3);
  });

  it('the fixture is what it claims: 100,000 settled entries and 3 pending ones', () => {
    expect(big.size()).toBe(BIG + 3);
    const states = new Map<string, number>();
    for (const e of big.entries()) states.set(e.state, (states.get(e.state) ?? 0) + 1);
    expect(Object.fromEntries(states)).toEqual({ confirmed: BIG / 2, failed: BIG / 2, pending: 3 });
  });

  it('a query for a non-resource name costs the same with 100,000 settled entries as with 100', () => {
    // Nothing is due at 1 s: the query must not look at any entry.
    const atSmall = cost(small, () => small.onDnsQuery('example.com', [], 1_000));
    const atBig = cost(big, () => big.onDnsQuery('example.com', [], 1_000));
    expect(atBig).toEqual(atSmall);
    expect(atBig.visits).toBe(0);
  });

  it('a query that resends the 3 due pending entries touches those 3, whatever the number of settled ones', () => {
    const atSmall = cost(small, () => small.onDnsQuery('example.com', [], 2_000));
    const atBig = cost(big, () => big.onDnsQuery('example.com', [], 2_000));
    expect(sendsCount(drain(big))).toBe(3);
    drain(small);
    expect(atBig).toEqual(atSmall);
    expect(atBig.visits).toBe(3);
  });

  it('a query for a confirmed domain touches only that domain’s entry', () => {
    const match = [{ gatewayId: 'gw1', resourceId: 'web', proxyIps: IPS }];
    const atBig = cost(big, () => big.onDnsQuery('host-42.corp.example', match, 3_000));
    expect(sendsCount(drain(big))).toBe(1);
    // one lookup in `update`, one entry of the domain walked by the refresh step
    expect(atBig.visits).toBe(2);
  });

  it('no Map or Set larger than a handful is walked while answering a query, a packet or a status', () => {
    const match = [{ gatewayId: 'gw1', resourceId: 'web', proxyIps: IPS }];
    const largest = largestIterationDuring(() => {
      big.onDnsQuery('example.org', [], 10_000);
      big.onDnsQuery('host-7.corp.example', match, 10_000);
      big.onOutgoingPacket({ gatewayId: 'gw1', domain: 'host-9.corp.example', resourceId: 'web' }, 10_000);
      big.onDomainStatus(
        'gw1',
        { domain: 'host-11.corp.example', resourceId: 'web', status: 'active' },
        10_000,
      );
      big.handleTimeout(10_000);
      big.pollTimeout();
    });
    drain(big);
    expect(largest).toBeLessThanOrEqual(3);
  });

  it('the iteration spy does see a scan (it would catch a naive implementation)', () => {
    const largest = largestIterationDuring(() => {
      big.entries();
    });
    expect(largest).toBeGreaterThanOrEqual(BIG);
  });
});

describe('cost grows at most logarithmically with pending entries', () => {
  it('with 100,000 pending entries, a query that resends one due entry costs O(log n) comparisons', () => {
    // A resend interval longer than the set-up, and one send per millisecond: later on, exactly one entry
    // becomes due per millisecond.
    const interval = 2 * BIG;
    const nat = new DnsResourceNat({ resendIntervalMs: interval });
    const match = [{ gatewayId: 'gw1', resourceId: 'web', proxyIps: IPS }];
    for (let i = 0; i < BIG; i++) nat.onDnsQuery(`p-${i}.corp.example`, match, i);
    expect(sendsCount(drain(nat))).toBe(BIG);
    const bound = 3 * Math.ceil(Math.log2(BIG)) + 4;
    let worst = 0;
    for (let t = interval; t < interval + 100; t++) {
      const c = cost(nat, () => nat.onDnsQuery('example.com', [], t));
      expect(c.visits).toBe(1); // exactly the entry sent at t - interval
      worst = Math.max(worst, c.comparisons);
    }
    expect(sendsCount(drain(nat))).toBe(100);
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(bound);
  });

  it('with 100,000 waiting entries, a timer tick that resends one costs O(log n) comparisons', () => {
    const interval = 2 * BIG;
    const nat = new DnsResourceNat({ resendIntervalMs: interval });
    const match = [{ gatewayId: 'gw1', resourceId: 'web', proxyIps: IPS }];
    for (let i = 0; i < BIG; i++) {
      const domain = `w-${i}.corp.example`;
      nat.onDnsQuery(domain, match, i);
      nat.onOutgoingPacket({ gatewayId: 'gw1', domain, resourceId: 'web' }, i);
    }
    expect(sendsCount(drain(nat))).toBe(BIG);
    const bound = 6 * Math.ceil(Math.log2(BIG)) + 8; // two indexes move per resend
    const deadline = nat.pollTimeout() ?? Number.NaN;
    expect(deadline).toBe(interval);
    const c = cost(nat, () => nat.handleTimeout(deadline));
    expect(sendsCount(drain(nat))).toBe(1);
    expect(c.visits).toBe(1);
    expect(c.comparisons).toBeLessThanOrEqual(bound);
  });
});

function sendsCount(effects: ReturnType<typeof drain>): number {
  return effects.filter((e) => e.type === 'send-assigned-ips').length;
}
