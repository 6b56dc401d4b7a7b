import { describe, expect, it } from 'vitest';
import { DnsResourceNat, type NatKey, normalizeDomain } from '../../ts/client/dns-resource-nat.js';
import {
  answer,
  confirmedNat,
  DOMAIN,
  drain,
  failedNat,
  GW,
  IPS,
  KEY,
  kinds,
  MATCH,
  OTHER_DOMAIN,
  OTHER_IPS,
  pendingNat,
  RES,
  recreatingNat,
  sendsIn,
  snapshotOf,
} from './support/nat-helpers.js';

describe('DNS query for a resource domain (table rows 1-4)', () => {
  it('a query for a new domain creates a pending entry, gates it to buffer and sends AssignedIps', () => {
    const nat = new DnsResourceNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 1_000);
    expect(nat.state(KEY)).toBe('pending');
    expect(drain(nat)).toEqual([
      { type: 'gate', key: KEY, mode: 'buffer' },
      { type: 'send-assigned-ips', gatewayId: GW, domain: DOMAIN, resourceId: RES, proxyIps: IPS, seq: 1 },
    ]);
  });

  it('a query for a confirmed domain refreshes it at once while its traffic keeps passing', () => {
    const nat = confirmedNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 100);
    expect(kinds(drain(nat))).toEqual(['send']);
    expect(nat.state(KEY)).toBe('pending');
    expect(nat.onOutgoingPacket(KEY, 100)).toBe('pass');
  });

  it('a query for a failed domain retries it at once and buffers its traffic again', () => {
    const nat = failedNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 100);
    expect(kinds(drain(nat))).toEqual(['gate:buffer', 'send']);
    expect(nat.state(KEY)).toBe('pending');
    expect(nat.onOutgoingPacket(KEY, 100)).toBe('buffer');
  });

  it('a query for a pending domain within 2 s of the last send sends nothing', () => {
    const nat = pendingNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 1_999);
    expect(drain(nat)).toEqual([]);
  });

  it('a query for a pending domain 2 s after the last send resends with a new seq', () => {
    const nat = pendingNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 2_000);
    const sends = sendsIn(drain(nat));
    expect(sends).toHaveLength(1);
    expect(sends[0]?.seq).toBe(2);
  });

  it('a query for a pending domain keeps its buffer: no gate change, no discard', () => {
    const nat = pendingNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 5_000);
    expect(kinds(drain(nat))).toEqual(['send']);
    expect(nat.onOutgoingPacket(KEY, 5_000)).toBe('buffer');
  });

  it('a query for a recreating domain makes it pending and sends at once', () => {
    const nat = recreatingNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 10);
    expect(kinds(drain(nat))).toEqual(['send']);
    expect(nat.state(KEY)).toBe('pending');
  });

  it('a query that does not match an entry of its domain leaves it recreating, passing, unsent', () => {
    const nat = recreatingNat();
    expect(nat.state(KEY)).toBe('recreating');
    nat.onDnsQuery(OTHER_DOMAIN, [], 60_000);
    expect(nat.onOutgoingPacket(KEY, 60_000)).toBe('pass');
    expect(drain(nat)).toEqual([]);
    expect(nat.pollTimeout()).toBeUndefined();
  });

  it('a failed entry that a query of its domain does not update keeps passing traffic (no buffer without resends)', () => {
    const nat = failedNat();
    nat.onDnsQuery(DOMAIN, [], 10);
    expect(drain(nat)).toEqual([]);
    expect(nat.state(KEY)).toBe('recreating');
    expect(nat.onOutgoingPacket(KEY, 10)).toBe('pass');
  });

  it('the latest proxy IPs handed to a query are the ones the next send carries', () => {
    const nat = pendingNat();
    nat.onDnsQuery(DOMAIN, [{ ...MATCH, proxyIps: OTHER_IPS }], 2_000);
    expect(sendsIn(drain(nat))[0]?.proxyIps).toEqual(OTHER_IPS);
  });

  it('the same match listed twice in one query sends once', () => {
    const nat = new DnsResourceNat();
    nat.onDnsQuery(DOMAIN, [MATCH, MATCH], 0);
    expect(sendsIn(drain(nat))).toHaveLength(1);
  });
});

describe('any DNS query re-checks pending entries (table row 5)', () => {
  it('a query for a non-resource name resends every pending entry whose last send is at least 2 s old', () => {
    const nat = new DnsResourceNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 0);
    nat.onDnsQuery(OTHER_DOMAIN, [{ ...MATCH, proxyIps: OTHER_IPS }], 500);
    drain(nat);
    nat.onDnsQuery('example.com', [], 2_000);
    expect(sendsIn(drain(nat)).map((s) => s.domain)).toEqual([DOMAIN]);
    nat.onDnsQuery('example.com', [], 2_500);
    expect(sendsIn(drain(nat)).map((s) => s.domain)).toEqual([OTHER_DOMAIN]);
  });

  it('a query for a non-resource name does not resend a pending entry sent less than 2 s ago', () => {
    const nat = pendingNat();
    nat.onDnsQuery('example.com', [], 1_999);
    expect(drain(nat)).toEqual([]);
  });

  it('a query for another domain never resends a confirmed entry', () => {
    const nat = confirmedNat();
    nat.onDnsQuery(OTHER_DOMAIN, [], 1_000_000);
    expect(drain(nat)).toEqual([]);
    expect(nat.state(KEY)).toBe('confirmed');
  });

  it('a query for another domain never retries a failed entry', () => {
    const nat = failedNat();
    for (let t = 2_000; t <= 60_000; t += 2_000) nat.onDnsQuery(OTHER_DOMAIN, [], t);
    expect(drain(nat)).toEqual([]);
    expect(nat.state(KEY)).toBe('failed');
  });

  it('pending entries due at the same instant are resent in the order they were last sent', () => {
    const nat = new DnsResourceNat();
    const domains = ['c.corp.example', 'a.corp.example', 'b.corp.example'];
    for (const d of domains) nat.onDnsQuery(d, [MATCH], 0);
    drain(nat);
    nat.onDnsQuery('example.com', [], 2_000);
    expect(sendsIn(drain(nat)).map((s) => s.domain)).toEqual(domains);
  });
});

describe('outgoing packets (table row 6)', () => {
  it('a packet to a new pending entry is buffered', () => {
    expect(pendingNat().onOutgoingPacket(KEY, 0)).toBe('buffer');
  });

  it('a packet to a pending entry within 2 s of the last send sends nothing', () => {
    const nat = pendingNat();
    nat.onOutgoingPacket(KEY, 1_999);
    expect(drain(nat)).toEqual([]);
  });

  it('a packet to a pending entry 2 s after the last send resends', () => {
    const nat = pendingNat();
    expect(nat.onOutgoingPacket(KEY, 2_000)).toBe('buffer');
    expect(kinds(drain(nat))).toEqual(['send']);
  });

  it('a packet to a refreshing pending entry passes and still resends after 2 s', () => {
    const nat = confirmedNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 0);
    drain(nat);
    expect(nat.onOutgoingPacket(KEY, 2_000)).toBe('pass');
    expect(kinds(drain(nat))).toEqual(['send']);
  });

  it.each([
    ['confirmed', confirmedNat],
    ['failed', failedNat],
    ['recreating', recreatingNat],
  ] as const)('a packet to a %s entry passes and sends nothing', (_state, make) => {
    const nat = make();
    expect(nat.onOutgoingPacket(KEY, 100_000)).toBe('pass');
    expect(drain(nat)).toEqual([]);
  });

  it('a packet for an unknown key passes and produces no effect', () => {
    const nat = pendingNat();
    expect(nat.onOutgoingPacket({ ...KEY, resourceId: 'nope' }, 100_000)).toBe('pass');
    expect(nat.onOutgoingPacket({ ...KEY, gatewayId: 'gw9' }, 100_000)).toBe('pass');
    expect(drain(nat)).toEqual([]);
    expect(nat.size()).toBe(1);
  });
});

describe('timer with backoff while an application waits (table row 7)', () => {
  it('no timer is armed while no packet is buffered', () => {
    expect(pendingNat().pollTimeout()).toBeUndefined();
  });

  it('a buffered packet arms the timer 2 s after the last send', () => {
    const nat = pendingNat(undefined, 1_000);
    nat.onOutgoingPacket(KEY, 1_500);
    expect(nat.pollTimeout()).toBe(3_000);
  });

  it('a packet that passes (refreshing entry) does not arm the timer', () => {
    const nat = confirmedNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 0);
    nat.onOutgoingPacket(KEY, 1);
    expect(nat.pollTimeout()).toBeUndefined();
  });

  it('handleTimeout before the deadline does nothing', () => {
    const nat = pendingNat();
    nat.onOutgoingPacket(KEY, 0);
    nat.handleTimeout(1_999);
    expect(drain(nat)).toEqual([]);
    expect(nat.pollTimeout()).toBe(2_000);
  });

  it('timer resends back off 2 s, 4 s, 8 s, 8 s … and the entry fails 8 s after the sixth send', () => {
    const nat = pendingNat();
    nat.onOutgoingPacket(KEY, 0);
    const sendTimes = [0];
    let failedAt: number | undefined;
    for (let deadline = nat.pollTimeout(); deadline !== undefined; deadline = nat.pollTimeout()) {
      nat.handleTimeout(deadline);
      for (const effect of drain(nat)) if (effect.type === 'send-assigned-ips') sendTimes.push(deadline);
      if (nat.state(KEY) === 'failed') failedAt = deadline;
    }
    expect(sendTimes).toEqual([0, 2_000, 6_000, 14_000, 22_000, 30_000]);
    expect(failedAt).toBe(38_000);
  });

  it('the backoff stays at four resend intervals however many sends are allowed', () => {
    const nat = pendingNat({ maxUnansweredSends: 9, resendIntervalMs: 1_000 });
    nat.onOutgoingPacket(KEY, 0);
    const gaps: number[] = [];
    let last = 0;
    for (let deadline = nat.pollTimeout(); deadline !== undefined; deadline = nat.pollTimeout()) {
      nat.handleTimeout(deadline);
      if (sendsIn(drain(nat)).length > 0) {
        gaps.push(deadline - last);
        last = deadline;
      }
    }
    expect(gaps).toEqual([1_000, 2_000, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
  });

  it('a send triggered by a query moves the timer: the next timer send is counted from it', () => {
    const nat = pendingNat();
    nat.onOutgoingPacket(KEY, 0);
    nat.onDnsQuery('example.com', [], 2_500); // second send, at 2.5 s
    drain(nat);
    expect(nat.pollTimeout()).toBe(2_500 + 4_000);
  });

  it('a confirmed entry has no timer', () => {
    const nat = pendingNat();
    nat.onOutgoingPacket(KEY, 0);
    answer(nat, 'active', 10);
    expect(nat.pollTimeout()).toBeUndefined();
  });

  it('a failed entry has no timer', () => {
    const nat = pendingNat();
    nat.onOutgoingPacket(KEY, 0);
    answer(nat, 'inactive', 10);
    expect(nat.pollTimeout()).toBeUndefined();
  });

  it('pollTimeout is the earliest deadline over all waiting entries', () => {
    const nat = new DnsResourceNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 500);
    nat.onDnsQuery(OTHER_DOMAIN, [MATCH], 100);
    nat.onOutgoingPacket(KEY, 600);
    expect(nat.pollTimeout()).toBe(2_500);
    nat.onOutgoingPacket({ ...KEY, domain: OTHER_DOMAIN }, 700);
    expect(nat.pollTimeout()).toBe(2_100);
  });
});

describe('unanswered sends (table row 8)', () => {
  it('after maxUnansweredSends sends without a status the entry fails with reason timeout, discarding its buffer', () => {
    const nat = pendingNat({ maxUnansweredSends: 3 });
    nat.onOutgoingPacket(KEY, 0);
    nat.onOutgoingPacket(KEY, 2_000);
    nat.onOutgoingPacket(KEY, 4_000);
    expect(sendsIn(drain(nat))).toHaveLength(2);
    expect(nat.onOutgoingPacket(KEY, 6_000)).toBe('pass');
    expect(drain(nat)).toEqual([
      { type: 'discard', key: KEY },
      { type: 'gate', key: KEY, mode: 'pass' },
    ]);
    expect(nat.state(KEY)).toBe('failed');
    expect(snapshotOf(nat).failureReason).toBe('timeout');
  });

  it('sends triggered by other domains’ queries count towards maxUnansweredSends', () => {
    const nat = pendingNat();
    let sends = 1;
    for (let t = 2_000; t <= 40_000; t += 2_000) {
      nat.onDnsQuery('example.com', [], t);
      sends += sendsIn(drain(nat)).length;
    }
    expect(sends).toBe(6);
    expect(nat.state(KEY)).toBe('failed');
  });

  it('an entry that runs out of sends without buffering fails without discard or gate effects', () => {
    const nat = confirmedNat({ maxUnansweredSends: 1 });
    nat.onDnsQuery(DOMAIN, [MATCH], 0); // refresh, traffic passing
    drain(nat);
    nat.onDnsQuery('example.com', [], 2_000);
    expect(drain(nat)).toEqual([]);
    expect(nat.state(KEY)).toBe('failed');
  });

  it('a status clears the unanswered count, and a later refresh gets all maxUnansweredSends again', () => {
    const nat = pendingNat({ maxUnansweredSends: 3 });
    nat.onDnsQuery('example.com', [], 2_000);
    nat.onDnsQuery('example.com', [], 4_000); // three sends so far
    answer(nat, 'active', 4_100);
    drain(nat);
    expect(snapshotOf(nat).unansweredSends).toBe(0);
    nat.onDnsQuery(DOMAIN, [MATCH], 5_000);
    let sends = sendsIn(drain(nat)).length;
    for (let t = 7_000; t <= 30_000; t += 2_000) {
      nat.onDnsQuery('example.com', [], t);
      sends += sendsIn(drain(nat)).length;
    }
    expect(sends).toBe(3);
  });

  it('a query for its own domain gives a timed-out entry a fresh budget', () => {
    const nat = pendingNat({ maxUnansweredSends: 2 });
    nat.onDnsQuery('example.com', [], 2_000);
    nat.onDnsQuery('example.com', [], 4_000);
    expect(nat.state(KEY)).toBe('failed');
    drain(nat);
    nat.onDnsQuery(DOMAIN, [MATCH], 4_001);
    nat.onDnsQuery('example.com', [], 6_001);
    expect(sendsIn(drain(nat))).toHaveLength(2);
    expect(nat.state(KEY)).toBe('pending');
  });
});

describe('DomainStatus (table rows 9-11)', () => {
  it('active on a buffering pending entry confirms it, opens the gate and flushes the buffer, in that order', () => {
    const nat = pendingNat();
    answer(nat, 'active', 50);
    expect(nat.state(KEY)).toBe('confirmed');
    expect(drain(nat)).toEqual([
      { type: 'gate', key: KEY, mode: 'pass' },
      { type: 'flush', key: KEY },
    ]);
  });

  it('active on a refreshing pending entry confirms it without gate or flush effects', () => {
    const nat = confirmedNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 10);
    drain(nat);
    answer(nat, 'active', 20);
    expect(nat.state(KEY)).toBe('confirmed');
    expect(drain(nat)).toEqual([]);
  });

  it('active on a failed entry confirms it (the gateway healed the mapping)', () => {
    const nat = failedNat();
    answer(nat, 'active', 10);
    expect(nat.state(KEY)).toBe('confirmed');
    expect(drain(nat)).toEqual([]);
  });

  it('active on a recreating entry confirms it', () => {
    const nat = recreatingNat();
    answer(nat, 'active', 10);
    expect(nat.state(KEY)).toBe('confirmed');
  });

  it('active twice has the effects of once', () => {
    const nat = pendingNat();
    answer(nat, 'active', 50);
    const once = drain(nat);
    answer(nat, 'active', 60);
    expect(once).toHaveLength(2);
    expect(drain(nat)).toEqual([]);
  });

  it('inactive on a buffering pending entry fails it: discard, then gate pass', () => {
    const nat = pendingNat();
    answer(nat, 'inactive', 50);
    expect(nat.state(KEY)).toBe('failed');
    expect(snapshotOf(nat).failureReason).toBe('inactive');
    expect(drain(nat)).toEqual([
      { type: 'discard', key: KEY },
      { type: 'gate', key: KEY, mode: 'pass' },
    ]);
  });

  it('inactive on a confirmed entry fails it without buffer effects', () => {
    const nat = confirmedNat();
    answer(nat, 'inactive', 10);
    expect(nat.state(KEY)).toBe('failed');
    expect(drain(nat)).toEqual([]);
  });

  it('inactive twice has the effects of once', () => {
    const nat = pendingNat();
    answer(nat, 'inactive', 50);
    expect(drain(nat)).toHaveLength(2);
    answer(nat, 'inactive', 60);
    expect(drain(nat)).toEqual([]);
    expect(nat.state(KEY)).toBe('failed');
  });

  it('the reason the gateway gives for inactive is kept for status output', () => {
    const nat = pendingNat();
    nat.onDomainStatus(
      GW,
      { domain: DOMAIN, resourceId: RES, status: 'inactive', seq: 1, reason: 'nxdomain' },
      5,
    );
    expect(snapshotOf(nat)).toMatchObject({ failureReason: 'inactive', failureDetail: 'nxdomain' });
  });

  it('an unknown status string reads as inactive', () => {
    const nat = pendingNat();
    const status = { domain: DOMAIN, resourceId: RES, status: 'degraded' as 'active', seq: 1 };
    nat.onDomainStatus(GW, status, 10);
    expect(nat.state(KEY)).toBe('failed');
  });

  it('a status for an unknown entry is ignored and counted', () => {
    const nat = pendingNat();
    nat.onDomainStatus(GW, { domain: OTHER_DOMAIN, resourceId: RES, status: 'active', seq: 1 }, 10);
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: 'other', status: 'active', seq: 1 }, 10);
    expect(drain(nat)).toEqual([]);
    expect(nat.size()).toBe(1);
    expect(nat.state(KEY)).toBe('pending');
    expect(nat.counters().statusesUnknownEntry).toBe(2);
  });

  it('a status from a gateway other than the entry’s is ignored', () => {
    const nat = pendingNat();
    nat.onDomainStatus('gw2', { domain: DOMAIN, resourceId: RES, status: 'active', seq: 1 }, 10);
    expect(nat.state(KEY)).toBe('pending');
    expect(drain(nat)).toEqual([]);
  });

  it('a status without seq is applied', () => {
    const nat = pendingNat();
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'active' }, 10);
    expect(nat.state(KEY)).toBe('confirmed');
  });
});

describe('stale statuses (table row 12)', () => {
  it('a status with a seq lower than the last applied one is ignored', () => {
    const nat = confirmedNat(); // applied seq 1
    nat.onDnsQuery(DOMAIN, [MATCH], 10); // sends seq 2
    answer(nat, 'inactive', 20); // applies seq 2
    drain(nat);
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'active', seq: 1 }, 30);
    expect(nat.state(KEY)).toBe('failed');
    expect(nat.counters().statusesStale).toBe(1);
  });

  it('a reordered older answer arriving after the newer one changes nothing', () => {
    const nat = pendingNat(); // seq 1
    nat.onDnsQuery(DOMAIN, [MATCH], 2_000); // seq 2
    drain(nat);
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'active', seq: 2 }, 2_100);
    drain(nat);
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'inactive', seq: 1 }, 2_200);
    expect(nat.state(KEY)).toBe('confirmed');
    expect(drain(nat)).toEqual([]);
  });

  it('an older answer that arrives first is applied (it is the newest the entry has heard)', () => {
    const nat = pendingNat(); // seq 1
    nat.onDnsQuery(DOMAIN, [MATCH], 2_000); // seq 2
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'active', seq: 1 }, 2_100);
    expect(nat.state(KEY)).toBe('confirmed');
  });

  it('a status repeating the last applied seq is applied (a gateway healing on its own)', () => {
    const nat = failedNat(); // inactive, seq 1
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'active', seq: 1 }, 10);
    expect(nat.state(KEY)).toBe('confirmed');
  });

  it('a status with a seq that was never sent is ignored', () => {
    const nat = pendingNat(); // seq 1
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'active', seq: 7 }, 10);
    expect(nat.state(KEY)).toBe('pending');
    expect(nat.counters().statusesStale).toBe(1);
  });

  it('a status with a seq that is not an integer is ignored', () => {
    const nat = pendingNat();
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'active', seq: Number.NaN }, 10);
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'active', seq: 0.5 }, 10);
    expect(nat.state(KEY)).toBe('pending');
  });

  it('a status from an earlier life of the same key (before a gateway loss) is ignored', () => {
    const nat = pendingNat(); // seq 1
    nat.onGatewayLost(GW);
    nat.onDnsQuery(DOMAIN, [MATCH], 100); // new entry, seq 2
    drain(nat);
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'inactive', seq: 1 }, 110);
    expect(nat.state(KEY)).toBe('pending');
  });

  it('seqs are never reused across entries', () => {
    const nat = new DnsResourceNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 0);
    nat.onDnsQuery(OTHER_DOMAIN, [MATCH], 0);
    nat.onDnsQuery('x.corp.example', [MATCH], 2_000);
    const seqs = sendsIn(drain(nat)).map((s) => s.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });
});

describe('transitions from every state', () => {
  type Make = () => DnsResourceNat;
  const makers: Record<'pending' | 'recreating' | 'confirmed' | 'failed', Make> = {
    pending: () => pendingNat(),
    recreating: () => recreatingNat(),
    confirmed: () => confirmedNat(),
    failed: () => failedNat(),
  };
  const inputs: Record<string, (nat: DnsResourceNat) => void> = {
    'own-domain query that matches it': (nat) => nat.onDnsQuery(DOMAIN, [MATCH], 10_000),
    'own-domain query that does not match it': (nat) => nat.onDnsQuery(DOMAIN, [], 10_000),
    'other-domain query': (nat) => nat.onDnsQuery(OTHER_DOMAIN, [], 10_000),
    'outgoing packet': (nat) => void nat.onOutgoingPacket(KEY, 10_000),
    timer: (nat) => nat.handleTimeout(1_000_000),
    'status active': (nat) => answer(nat, 'active', 10_000),
    'status inactive': (nat) => answer(nat, 'inactive', 10_000),
    'gateway lost': (nat) => nat.onGatewayLost(GW),
    'resource removed': (nat) => nat.onResourceRemoved(RES),
    'domain released': (nat) => nat.onDomainReleased(DOMAIN),
  };
  // Expected next state for every (state, input); undefined means the entry is gone.
  const expected: Record<string, Record<string, string | undefined>> = {
    pending: {
      'own-domain query that matches it': 'pending',
      'own-domain query that does not match it': 'pending',
      'other-domain query': 'pending',
      'outgoing packet': 'pending',
      timer: 'pending',
      'status active': 'confirmed',
      'status inactive': 'failed',
      'gateway lost': undefined,
      'resource removed': undefined,
      'domain released': undefined,
    },
    recreating: {
      'own-domain query that matches it': 'pending',
      'own-domain query that does not match it': 'recreating',
      'other-domain query': 'recreating',
      'outgoing packet': 'recreating',
      timer: 'recreating',
      'status active': 'confirmed',
      'status inactive': 'failed',
      'gateway lost': undefined,
      'resource removed': undefined,
      'domain released': undefined,
    },
    confirmed: {
      'own-domain query that matches it': 'pending',
      'own-domain query that does not match it': 'recreating',
      'other-domain query': 'confirmed',
      'outgoing packet': 'confirmed',
      timer: 'confirmed',
      'status active': 'confirmed',
      'status inactive': 'failed',
      'gateway lost': undefined,
      'resource removed': undefined,
      'domain released': undefined,
    },
    failed: {
      'own-domain query that matches it': 'pending',
      'own-domain query that does not match it': 'recreating',
      'other-domain query': 'failed',
      'outgoing packet': 'failed',
      timer: 'failed',
      'status active': 'confirmed',
      'status inactive': 'failed',
      'gateway lost': undefined,
      'resource removed': undefined,
      'domain released': undefined,
    },
  };
  const cases = Object.entries(expected).flatMap(([from, row]) =>
    Object.entries(row).map(([input, to]) => ({ from, input, to })),
  );

  it.each(cases)('from $from, $input → $to', ({ from, input, to }) => {
    const nat = makers[from as keyof typeof makers]();
    expect(nat.state(KEY)).toBe(from);
    inputs[input]?.(nat);
    expect(nat.state(KEY)).toBe(to);
  });
});

describe('domain normalisation', () => {
  it.each([
    ['upper case', 'APP.Corp.Example'],
    ['a trailing dot', 'app.corp.example.'],
    ['both', 'App.CORP.example.'],
  ])('a query with %s reaches the same entry', (_what, spelling) => {
    const nat = pendingNat();
    nat.onDnsQuery(spelling, [MATCH], 2_000);
    expect(nat.size()).toBe(1);
    expect(sendsIn(drain(nat))[0]?.domain).toBe(DOMAIN);
  });

  it('effects name the domain lower-case without the trailing dot', () => {
    const nat = new DnsResourceNat();
    nat.onDnsQuery('App.Corp.Example.', [MATCH], 0);
    const effects = drain(nat);
    expect(effects[0]).toEqual({ type: 'gate', key: KEY, mode: 'buffer' });
    expect(sendsIn(effects)[0]?.domain).toBe(DOMAIN);
  });

  it('a status and a packet spelled differently reach the same entry', () => {
    const nat = pendingNat();
    const loud: NatKey = { ...KEY, domain: 'APP.CORP.EXAMPLE.' };
    expect(nat.state(loud)).toBe('pending');
    expect(nat.onOutgoingPacket(loud, 0)).toBe('buffer');
    nat.onDomainStatus(GW, { domain: 'App.Corp.Example.', resourceId: RES, status: 'active', seq: 1 }, 10);
    expect(nat.state(KEY)).toBe('confirmed');
  });

  it('gateway and resource ids are compared exactly (they are ids, not names)', () => {
    const nat = pendingNat();
    expect(nat.state({ ...KEY, gatewayId: 'GW1' })).toBeUndefined();
    expect(nat.state({ ...KEY, resourceId: 'Web' })).toBeUndefined();
  });

  it('normalizeDomain strips one trailing dot and lower-cases', () => {
    expect(normalizeDomain('A.B.')).toBe('a.b');
    expect(normalizeDomain('a.b')).toBe('a.b');
  });
});

describe('keys are (gateway, domain, resource)', () => {
  it('two resources sharing a domain each get their own handshake, even when one is confirmed', () => {
    const nat = confirmedNat();
    const other = { gatewayId: GW, resourceId: 'web2', proxyIps: IPS };
    nat.onDnsQuery(DOMAIN, [MATCH, other], 10);
    const sends = sendsIn(drain(nat));
    expect(sends.map((s) => s.resourceId)).toEqual([RES, 'web2']);
    expect(nat.size()).toBe(2);
  });

  it('a status for one resource leaves the other resource of the same domain alone', () => {
    const nat = new DnsResourceNat();
    nat.onDnsQuery(DOMAIN, [MATCH, { gatewayId: GW, resourceId: 'web2', proxyIps: IPS }], 0);
    drain(nat);
    answer(nat, 'active', 10);
    expect(nat.state(KEY)).toBe('confirmed');
    expect(nat.state({ ...KEY, resourceId: 'web2' })).toBe('pending');
  });

  it('the same domain and resource through two gateways are two entries', () => {
    const nat = new DnsResourceNat();
    nat.onDnsQuery(DOMAIN, [MATCH, { ...MATCH, gatewayId: 'gw2' }], 0);
    expect(sendsIn(drain(nat)).map((s) => s.gatewayId)).toEqual([GW, 'gw2']);
  });

  it('ids that only differ in where a separator would fall are distinct keys', () => {
    const nat = new DnsResourceNat();
    nat.onDnsQuery(DOMAIN, [{ gatewayId: 'a|b', resourceId: 'c', proxyIps: IPS }], 0);
    nat.onDnsQuery(DOMAIN, [{ gatewayId: 'a', resourceId: 'b|c', proxyIps: IPS }], 0);
    expect(nat.size()).toBe(2);
  });
});

describe('clearing by gateway and by resource (table row 13)', () => {
  function twoGatewaysTwoResources(): DnsResourceNat {
    const nat = new DnsResourceNat();
    nat.onDnsQuery(DOMAIN, [MATCH], 0); // gw1/web, buffering
    nat.onDnsQuery(OTHER_DOMAIN, [{ gatewayId: 'gw2', resourceId: RES, proxyIps: OTHER_IPS }], 0); // gw2/web
    nat.onDnsQuery('c.corp.example', [{ gatewayId: GW, resourceId: 'ssh', proxyIps: OTHER_IPS }], 0); // gw1/ssh
    drain(nat);
    return nat;
  }

  it('a lost gateway drops exactly its entries', () => {
    const nat = twoGatewaysTwoResources();
    nat.onGatewayLost(GW);
    expect(nat.size()).toBe(1);
    expect(nat.state(KEY)).toBeUndefined();
    expect(nat.state({ gatewayId: 'gw2', domain: OTHER_DOMAIN, resourceId: RES })).toBe('pending');
  });

  it('a removed resource drops exactly its entries', () => {
    const nat = twoGatewaysTwoResources();
    nat.onResourceRemoved(RES);
    expect(nat.size()).toBe(1);
    expect(nat.state({ gatewayId: GW, domain: 'c.corp.example', resourceId: 'ssh' })).toBe('pending');
  });

  it('dropping a buffering entry discards its buffer and returns its gate to pass', () => {
    const nat = pendingNat();
    nat.onGatewayLost(GW);
    expect(drain(nat)).toEqual([
      { type: 'discard', key: KEY },
      { type: 'gate', key: KEY, mode: 'pass' },
    ]);
  });

  it('a released domain loses its entries without any effect (the packet path forgot them first)', () => {
    const nat = pendingNat();
    nat.onDnsQuery(OTHER_DOMAIN, [{ ...MATCH, proxyIps: OTHER_IPS }], 0);
    nat.onOutgoingPacket(KEY, 0);
    drain(nat);
    nat.onDomainReleased(DOMAIN.toUpperCase());
    expect(drain(nat)).toEqual([]);
    expect(nat.state(KEY)).toBeUndefined();
    expect(nat.keysOf(DOMAIN)).toEqual([]);
    expect(nat.pollTimeout()).toBeUndefined();
    // The other domain's entry is untouched.
    expect(nat.size()).toBe(1);
  });

  it('dropping a confirmed entry emits nothing (it has no buffer)', () => {
    const nat = confirmedNat();
    nat.onResourceRemoved(RES);
    expect(drain(nat)).toEqual([]);
    expect(nat.size()).toBe(0);
  });

  it('a dropped entry is neither resent nor timed', () => {
    const nat = pendingNat();
    nat.onOutgoingPacket(KEY, 0);
    nat.onGatewayLost(GW);
    drain(nat);
    expect(nat.pollTimeout()).toBeUndefined();
    nat.onDnsQuery('example.com', [], 100_000);
    nat.handleTimeout(100_000);
    expect(drain(nat)).toEqual([]);
  });

  it('after a gateway loss the next query starts from scratch', () => {
    const nat = confirmedNat();
    nat.onGatewayLost(GW);
    nat.onDnsQuery(DOMAIN, [MATCH], 50);
    expect(kinds(drain(nat))).toEqual(['gate:buffer', 'send']);
    expect(snapshotOf(nat).totalSends).toBe(1);
  });

  it('clearing an unknown gateway or resource does nothing', () => {
    const nat = pendingNat();
    nat.onGatewayLost('nope');
    nat.onResourceRemoved('nope');
    expect(nat.size()).toBe(1);
    expect(drain(nat)).toEqual([]);
  });

  it('a status for a dropped entry is ignored', () => {
    const nat = pendingNat();
    nat.onResourceRemoved(RES);
    drain(nat);
    nat.onDomainStatus(GW, { domain: DOMAIN, resourceId: RES, status: 'active', seq: 1 }, 10);
    expect(nat.size()).toBe(0);
    expect(drain(nat)).toEqual([]);
  });
});

describe('options, size and snapshots', () => {
  it('resendIntervalMs sets the resend gate', () => {
    const nat = pendingNat({ resendIntervalMs: 500 });
    nat.onDnsQuery('example.com', [], 499);
    expect(drain(nat)).toEqual([]);
    nat.onDnsQuery('example.com', [], 500);
    expect(sendsIn(drain(nat))).toHaveLength(1);
  });

  it.each([
    [{ resendIntervalMs: 0 }],
    [{ resendIntervalMs: -1 }],
    [{ resendIntervalMs: Number.POSITIVE_INFINITY }],
    [{ maxUnansweredSends: 0 }],
    [{ maxUnansweredSends: 2.5 }],
  ])('rejects nonsensical options %o', (options) => {
    expect(() => new DnsResourceNat(options)).toThrow(RangeError);
  });

  it('size counts tracked entries', () => {
    const nat = new DnsResourceNat();
    expect(nat.size()).toBe(0);
    nat.onDnsQuery(DOMAIN, [MATCH, { ...MATCH, resourceId: 'x' }], 0);
    nat.onDnsQuery('example.com', [], 0);
    expect(nat.size()).toBe(2);
  });

  it('proxy IPs in a send are a copy: changing them does not change the next send', () => {
    const nat = new DnsResourceNat();
    const ips = [...IPS];
    nat.onDnsQuery(DOMAIN, [{ ...MATCH, proxyIps: ips }], 0);
    ips[0] = '1.2.3.4';
    const first = sendsIn(drain(nat))[0];
    first?.proxyIps.push('9.9.9.9');
    nat.onDnsQuery('example.com', [], 2_000);
    expect(sendsIn(drain(nat))[0]?.proxyIps).toEqual(IPS);
  });

  it('entries() reports state, gate, counts and failure reason of each entry', () => {
    const nat = pendingNat();
    nat.onDnsQuery('example.com', [], 2_000);
    expect(snapshotOf(nat)).toEqual({
      ...KEY,
      state: 'pending',
      gate: 'buffer',
      proxyIps: IPS,
      unansweredSends: 2,
      totalSends: 2,
      lastSentAtMs: 2_000,
      lastSentSeq: 2,
    });
  });

  it('counters count sends, timer sends and timeouts', () => {
    const nat = pendingNat({ maxUnansweredSends: 2 });
    nat.onOutgoingPacket(KEY, 0);
    nat.handleTimeout(2_000);
    nat.handleTimeout(6_000);
    expect(nat.counters()).toMatchObject({ sends: 2, timerSends: 1, timeouts: 1 });
  });

  it('pollEffect returns undefined when there is nothing to do', () => {
    expect(new DnsResourceNat().pollEffect()).toBeUndefined();
  });
});
