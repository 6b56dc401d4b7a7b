// The state machine under a flood of names: sends nobody waits for spend a per-gateway budget and are
// deferred past it (never the sends an application waits on), and the machine holds at most `maxEntries`
// entries, dropping the least recently used.
import { describe, expect, it } from 'vitest';
import { DnsResourceNat, type NatKey } from '../../ts/client/dns-resource-nat.js';
import { drain, GW, kinds, RES, sendsIn } from './support/nat-helpers.js';

const ips = (n: number) => [0, 1, 2, 3].map((i) => `100.96.${n}.${i + 1}`);
const name = (n: number) => `n${n}.corp.example`;
const key = (n: number): NatKey => ({ gatewayId: GW, domain: name(n), resourceId: RES });
const query = (nat: DnsResourceNat, n: number, now: number) =>
  nat.onDnsQuery(name(n), [{ gatewayId: GW, resourceId: RES, proxyIps: ips(n) }], now);

describe('sends nobody waits for spend a budget', () => {
  it('past the budget a new name is deferred: nothing sent, nothing unanswered, buffering as usual', () => {
    const nat = new DnsResourceNat({ speculativeSendsPerSecond: 1, speculativeSendBurst: 2 });
    for (const n of [1, 2, 3]) query(nat, n, 0);
    const effects = drain(nat);
    expect(sendsIn(effects).map((e) => e.domain)).toEqual([name(1), name(2)]);
    expect(nat.counters().sendsDeferred).toBe(1);
    expect(nat.state(key(3))).toBe('pending');
    // Its gate buffers like any new entry's: the first packet must wait for the NAT.
    expect(effects).toContainEqual({ type: 'gate', key: key(3), mode: 'buffer' });
    // Other queries never resend it, and it never times out on its own.
    for (let t = 100; t < 60_000; t += 2_500) nat.onDnsQuery('unrelated.example', [], t);
    nat.handleTimeout(60_000);
    expect(sendsIn(drain(nat)).map((e) => e.domain)).not.toContain(name(3));
    expect(nat.state(key(3))).toBe('pending');
  });

  it('a packet for a deferred name sends at once, whatever the budget', () => {
    const nat = new DnsResourceNat({ speculativeSendsPerSecond: 1, speculativeSendBurst: 1 });
    query(nat, 1, 0);
    query(nat, 2, 0);
    drain(nat);
    expect(nat.onOutgoingPacket(key(2), 10)).toBe('buffer');
    const sends = sendsIn(drain(nat));
    expect(sends.map((e) => e.domain)).toEqual([name(2)]);
    // From then on it is an ordinary waiting entry: the timer resends it with backoff.
    nat.handleTimeout(10 + 2_000);
    expect(sendsIn(drain(nat)).map((e) => e.domain)).toEqual([name(2)]);
  });

  it("its own domain's next query sends it once a token has come back", () => {
    const nat = new DnsResourceNat({ speculativeSendsPerSecond: 1, speculativeSendBurst: 1 });
    query(nat, 1, 0);
    query(nat, 2, 0);
    drain(nat);
    query(nat, 2, 500); // no token yet
    expect(sendsIn(drain(nat))).toEqual([]);
    query(nat, 2, 1_000);
    expect(sendsIn(drain(nat)).map((e) => e.domain)).toEqual([name(2)]);
    expect(nat.counters().sendsDeferred).toBe(2);
  });

  it('budgets are per gateway', () => {
    const nat = new DnsResourceNat({ speculativeSendsPerSecond: 1, speculativeSendBurst: 1 });
    query(nat, 1, 0);
    nat.onDnsQuery('x.other.example', [{ gatewayId: 'gw2', resourceId: 'other', proxyIps: ips(9) }], 0);
    expect(sendsIn(drain(nat)).map((e) => e.gatewayId)).toEqual([GW, 'gw2']);
  });
});

describe('at most maxEntries entries', () => {
  it('a new name past the limit drops the least recently used entry, releasing its buffer', () => {
    const nat = new DnsResourceNat({ maxEntries: 2 });
    query(nat, 1, 0);
    query(nat, 2, 10);
    query(nat, 1, 20); // 1 is used again: 2 is now the least recently used
    drain(nat);
    query(nat, 3, 30);
    const effects = drain(nat);
    expect(kinds(effects).slice(0, 2)).toEqual(['discard', 'gate:pass']);
    expect(effects[0]).toEqual({ type: 'discard', key: key(2) });
    expect(nat.state(key(2))).toBeUndefined();
    expect(nat.state(key(1))).toBe('pending');
    expect(nat.state(key(3))).toBe('pending');
    expect(nat.size()).toBe(2);
    expect(nat.counters().entriesEvicted).toBe(1);
  });

  it('a packet counts as a use', () => {
    const nat = new DnsResourceNat({ maxEntries: 2 });
    query(nat, 1, 0);
    query(nat, 2, 10);
    nat.onOutgoingPacket(key(1), 20);
    query(nat, 3, 30);
    expect(nat.state(key(1))).toBe('pending');
    expect(nat.state(key(2))).toBeUndefined();
  });
});
