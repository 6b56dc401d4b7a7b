// The gateway's decisions with a fake runtime and a fake clock: every command the policy emits is
// collected and inspected; resolutions are answered by the test, whenever it likes.

import { describe, expect, it } from 'vitest';
import type { GatewayClient, ResourceConfig } from '../../ts/gateway/config.js';
import { DestinationFilter } from '../../ts/gateway/destination-filter.js';
import {
  type Command,
  GatewayPolicy,
  type PolicyConfig,
  type PolicyOptions,
  type ResolutionResult,
} from '../../ts/gateway/policy.js';
import { parseCidr } from '../../ts/net/ip.js';
import { DomainPattern } from '../../ts/net/pattern.js';
import { MessageType } from '../../ts/protocol/control.js';

const ALICE = 'j94dl3TnzOFymO2TF7GeJ2ev7qTp7QXCk5RbRIehKUA=';
const BOB = 'GORSExdMS2h85XY4zEnCx2eENvcJ4fgwJSDr+o+NdX4=';
const MALLORY = 'vrha9dBBzF+pkBO1114e9u4GYdsw9KCqhot14pA1Ihk=';

const V4 = ['100.96.0.4', '100.96.0.1', '100.96.0.3', '100.96.0.2'];
const V6 = [
  'fd00:2021:1111:8000::1',
  'fd00:2021:1111:8000::2',
  'fd00:2021:1111:8000::3',
  'fd00:2021:1111:8000::4',
];
const V4B = ['100.96.0.5', '100.96.0.6', '100.96.0.7', '100.96.0.8'];

function resource(id: string, pattern: string, extra: Partial<ResourceConfig> = {}): ResourceConfig {
  return { id, pattern: DomainPattern.parse(pattern), ipStack: 'dual', ...extra };
}

function client(
  id: string,
  publicKey: string,
  resources: string[],
  tunnelIps = ['100.64.0.2'],
): GatewayClient {
  return { id, publicKey, tunnelIps, resources };
}

function baseConfig(): PolicyConfig {
  return {
    resources: [
      resource('web', '*.corp.example', { ports: ['tcp/443', 'icmp'] }),
      resource('v4', 'v4.corp.example', { ipStack: 'ipv4' }),
      resource('db', 'db.corp.example'),
    ],
    clients: [client('alice', ALICE, ['web', 'v4']), client('bob', BOB, ['web'], ['100.64.0.3'])],
  };
}

const ok = (ipv4: string[], ipv6: string[] = [], ttlSeconds = 60): ResolutionResult => ({
  outcome: 'ok',
  ipv4,
  ipv6,
  ttlSeconds,
});
const nx: ResolutionResult = { outcome: 'nxdomain', ipv4: [], ipv6: [], ttlSeconds: 30 };

/** The policy plus a fake clock and a log of everything it told the runtime. */
class Harness {
  now = 1_000_000;
  readonly policy: GatewayPolicy;
  all: Command[] = [];

  constructor(config: PolicyConfig = baseConfig(), options: PolicyOptions = {}) {
    this.policy = new GatewayPolicy(config, options, this.now);
    this.drain();
  }

  drain(): Command[] {
    const out: Command[] = [];
    for (let c = this.policy.pollCommand(); c; c = this.policy.pollCommand())
      if (c.type !== 'log') out.push(c);
    this.all.push(...out);
    return out;
  }

  advance(ms: number): Command[] {
    this.now += ms;
    const t = this.policy.pollTimeout();
    if (t !== undefined && t <= this.now) this.policy.handleTimeout(this.now);
    return this.drain();
  }

  assign(key: string, resourceId: string, domain: string, proxyIps: unknown, seq: number): Command[] {
    const body = JSON.stringify({ resource: resourceId, domain, proxy_ips: proxyIps, seq });
    this.policy.onControl(key, MessageType.AssignedIps, body, this.now);
    return this.drain();
  }

  resolve(id: number, r: ResolutionResult): Command[] {
    this.policy.onResolution(id, r, this.now);
    return this.drain();
  }
}

const of = <T extends Command['type']>(cmds: Command[], type: T) =>
  cmds.filter((c): c is Extract<Command, { type: T }> => c.type === type);
const resolves = (cmds: Command[]) => of(cmds, 'resolve');
const statuses = (cmds: Command[]) => of(cmds, 'send-status').map((c) => ({ to: c.clientId, ...c.body }));
const mappings = (cmds: Command[]) =>
  Object.fromEntries(of(cmds, 'set-mapping').map((c) => [c.proxyIp, c.realIp ?? null]));

function onlyResolveId(cmds: Command[]): number {
  const r = resolves(cmds);
  expect(r).toHaveLength(1);
  return (r[0] as { id: number }).id;
}

describe('GatewayPolicy: startup', () => {
  it('adds every client as a NAT peer with its tunnel IPs as host routes', () => {
    const h = new Harness({
      resources: [],
      clients: [client('alice', ALICE, [], ['100.64.0.2', 'fd00:2021:1111::2'])],
    });
    expect(h.all).toEqual([
      {
        type: 'add-peer',
        clientId: 'alice',
        publicKey: ALICE,
        allowedIps: ['100.64.0.2/32', 'fd00:2021:1111::2/128'],
      },
    ]);
  });
});

describe('GatewayPolicy: AssignedIps validation', () => {
  const cases: Array<[string, string, string, string, unknown, string]> = [
    ['unknown client', MALLORY, 'web', 'a.corp.example', [...V4, ...V6], 'unknown-client'],
    ['unknown resource', ALICE, 'nope', 'a.corp.example', [...V4, ...V6], 'unknown-resource'],
    [
      'resource not allowed for this client',
      ALICE,
      'db',
      'db.corp.example',
      [...V4, ...V6],
      'resource-not-allowed',
    ],
    ['domain outside the pattern', ALICE, 'web', 'a.b.corp.example', [...V4, ...V6], 'domain-not-matching'],
    ['domain that is not a host name', ALICE, 'web', 'a b.corp.example', V4, 'domain-not-matching'],
    ['3 proxy IPs', ALICE, 'web', 'a.corp.example', V4.slice(0, 3), 'proxy-ip-count'],
    ['5 proxy IPs', ALICE, 'web', 'a.corp.example', [...V4, V6[0]], 'proxy-ip-count'],
    ['no list', ALICE, 'web', 'a.corp.example', '100.96.0.1', 'proxy-ip-count'],
    [
      '6 + 2 split',
      ALICE,
      'web',
      'a.corp.example',
      [...V4, ...V4B.slice(0, 2), ...V6.slice(0, 2)],
      'proxy-ip-count',
    ],
    [
      'not an address',
      ALICE,
      'web',
      'a.corp.example',
      ['100.96.0.1', 'x', '100.96.0.3', '100.96.0.4'],
      'proxy-ip-invalid',
    ],
    ['a number', ALICE, 'web', 'a.corp.example', [1, 2, 3, 4], 'proxy-ip-invalid'],
    [
      'an address outside the proxy range (the reference design gap)',
      ALICE,
      'web',
      'a.corp.example',
      ['100.96.0.1', '100.96.0.2', '100.96.0.3', '10.0.0.1'],
      'proxy-ip-out-of-range',
    ],
    [
      'just past the IPv4 range',
      ALICE,
      'web',
      'a.corp.example',
      ['100.96.0.1', '100.96.0.2', '100.96.0.3', '100.128.0.0'],
      'proxy-ip-out-of-range',
    ],
    [
      'just past the IPv6 range',
      ALICE,
      'web',
      'a.corp.example',
      [...V6.slice(0, 3), 'fd00:2021:1111:8000::20:0'],
      'proxy-ip-out-of-range',
    ],
    [
      'a duplicate',
      ALICE,
      'web',
      'a.corp.example',
      ['100.96.0.1', '100.96.0.1', '100.96.0.3', '100.96.0.4'],
      'proxy-ip-duplicate',
    ],
    [
      'same address spelled twice',
      ALICE,
      'web',
      'a.corp.example',
      [...V6.slice(0, 3), 'FD00:2021:1111:8000:0::3'],
      'proxy-ip-duplicate',
    ],
    ['IPv6 for an IPv4 resource', ALICE, 'v4', 'v4.corp.example', V6, 'proxy-ip-stack'],
    ['8 for an IPv4 resource', ALICE, 'v4', 'v4.corp.example', [...V4, ...V6], 'proxy-ip-stack'],
  ];
  for (const [what, key, res, domain, ips, reason] of cases) {
    it(`rejects ${what} with inactive/${reason} and installs nothing`, () => {
      const h = new Harness();
      const out = h.assign(key, res, domain, ips, 7);
      expect(statuses(out)).toEqual([
        expect.objectContaining({ resource: res, status: 'inactive', seq: 7, reason }),
      ]);
      expect(out.filter((c) => c.type !== 'send-status')).toEqual([]);
      expect(h.policy.counters.assignedIpsRejected[reason]).toBe(1);
      expect(h.policy.mappingCount()).toBe(0);
    });
  }

  it('accepts 4 of one family for a dual resource, 4 IPv4 for an IPv4 one, the bare parent of *.', () => {
    const h = new Harness();
    expect(resolves(h.assign(ALICE, 'web', 'a.corp.example', V6, 1))).toHaveLength(1);
    expect(resolves(h.assign(ALICE, 'v4', 'V4.Corp.Example.', V4, 2))).toHaveLength(1);
    expect(resolves(h.assign(BOB, 'web', 'corp.example', V4B, 3))).toHaveLength(1);
    expect(h.policy.counters.assignedIpsRejected).toEqual({});
  });

  it('drops a malformed body without answering, and counts it', () => {
    const h = new Harness();
    for (const body of [
      'not json',
      '[]',
      '{"resource":"web"}',
      '{"resource":"web","domain":"a.corp.example","seq":-1}',
    ]) {
      h.policy.onControl(ALICE, MessageType.AssignedIps, body, h.now);
    }
    expect(h.drain()).toEqual([]);
    expect(h.policy.counters.controlMalformed).toBe(4);
  });
});

describe('GatewayPolicy: always accept, resolve in the background', () => {
  it('registers the proxy IPs at once without an address, then maps proxy k to sorted real k mod n', () => {
    const h = new Harness();
    const out = h.assign(ALICE, 'web', 'App.corp.example.', [...V6, ...V4], 5);
    // Registered immediately, before any answer: traffic gets ICMP unreachable instead of nothing.
    expect(of(out, 'set-mapping')).toHaveLength(8);
    for (const m of of(out, 'set-mapping')) {
      expect(m.realIp).toBeUndefined();
      expect(m.ports).toEqual(['icmp', 'tcp/443']);
    }
    expect(statuses(out)).toEqual([]);
    const id = onlyResolveId(out);
    expect(resolves(out)[0]?.domain).toBe('app.corp.example');

    const done = h.resolve(id, ok(['10.0.0.9', '10.0.0.10', '10.0.0.2'], ['2001:db8::1'], 60));
    expect(mappings(done)).toEqual({
      '100.96.0.1': '10.0.0.2',
      '100.96.0.2': '10.0.0.9',
      '100.96.0.3': '10.0.0.10',
      '100.96.0.4': '10.0.0.2',
      'fd00:2021:1111:8000::1': '2001:db8::1',
      'fd00:2021:1111:8000::2': '2001:db8::1',
      'fd00:2021:1111:8000::3': '2001:db8::1',
      'fd00:2021:1111:8000::4': '2001:db8::1',
    });
    for (const m of of(done, 'set-mapping')) expect(m.ttlMs).toBe(60_000);
    expect(statuses(done)).toEqual([
      { to: 'alice', resource: 'web', domain: 'app.corp.example', status: 'active', seq: 5 },
    ]);
    // Commands are ordered: the mappings are in before the client is told to send.
    expect(done.findIndex((c) => c.type === 'send-status')).toBe(done.length - 1);
  });

  it('a family without addresses keeps its proxy IPs registered without one; active if any family maps', () => {
    const h = new Harness();
    const id = onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', [...V4, ...V6], 1));
    const done = h.resolve(id, ok(['10.0.0.1']));
    expect(Object.values(mappings(done)).filter((v) => v === null)).toHaveLength(0); // v6 unchanged: no command
    expect(of(done, 'set-mapping')).toHaveLength(4);
    expect(statuses(done)[0]?.status).toBe('active');

    // An IPv4 resource for a name with only AAAA records: nothing usable.
    const id2 = onlyResolveId(h.assign(ALICE, 'v4', 'v4.corp.example', V4B, 2));
    const done2 = h.resolve(id2, ok([], ['2001:db8::1']));
    expect(statuses(done2)).toEqual([
      expect.objectContaining({ status: 'inactive', reason: 'no-address-for-stack', seq: 2 }),
    ]);
  });

  it('NXDOMAIN, no records, timeout and error answer inactive with the reason; proxy IPs stay registered', () => {
    for (const [r, reason] of [
      [nx, 'nxdomain'],
      [{ outcome: 'no-records', ipv4: [], ipv6: [], ttlSeconds: 30 }, 'no-records'],
      [ok([]), 'no-records'],
      [{ outcome: 'timeout', ipv4: [], ipv6: [], ttlSeconds: 0 }, 'timeout'],
      [{ outcome: 'error', ipv4: [], ipv6: [], ttlSeconds: 0, error: 'SERVFAIL' }, 'error'],
      [{ outcome: 'error', ipv4: [], ipv6: [], ttlSeconds: 0, error: 'busy' }, 'resolver-busy'],
    ] as Array<[ResolutionResult, string]>) {
      const h = new Harness();
      const id = onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 3));
      const done = h.resolve(id, r);
      expect(statuses(done), reason).toEqual([
        expect.objectContaining({ status: 'inactive', reason, seq: 3 }),
      ]);
      expect(of(done, 'remove-mapping')).toEqual([]);
      expect(h.policy.mappingCount()).toBe(4);
    }
  });

  it('one resolution per domain: callers share it, and each waiting (client, resource) gets one answer', () => {
    const h = new Harness();
    const id = onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1));
    expect(resolves(h.assign(ALICE, 'web', 'a.corp.example', V4, 2))).toEqual([]); // duplicate, same seq space
    expect(resolves(h.assign(BOB, 'web', 'A.corp.example', V4B, 9))).toEqual([]);
    expect(h.policy.counters.resolutionsStarted).toBe(1);
    const done = h.resolve(id, ok(['10.0.0.1']));
    expect(statuses(done)).toEqual([
      { to: 'alice', resource: 'web', domain: 'a.corp.example', status: 'active', seq: 2 },
      { to: 'bob', resource: 'web', domain: 'a.corp.example', status: 'active', seq: 9 },
    ]);
    expect(Object.keys(mappings(done)).sort()).toEqual([...V4, ...V4B].sort());
  });

  it('the same AssignedIps twice has the effect of once (no re-registration wiping an address)', () => {
    const h = new Harness();
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1']));
    const again = h.assign(ALICE, 'web', 'a.corp.example', [...V4].reverse(), 2);
    expect(again).toEqual([
      expect.objectContaining({
        type: 'send-status',
        body: { resource: 'web', domain: 'a.corp.example', status: 'active', seq: 2 },
      }),
    ]);
    expect(h.policy.counters.assignedIpsDuplicate).toBe(1);
  });

  it('answers are cached for their TTL, then resolved again', () => {
    const h = new Harness();
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1'], [], 30));
    h.advance(29_000);
    // Another client within the TTL: served from the cache, mapped at once, no resolution.
    const bob = h.assign(BOB, 'web', 'a.corp.example', V4B, 1);
    expect(resolves(bob)).toEqual([]);
    expect(Object.values(mappings(bob))).toEqual(['10.0.0.1', '10.0.0.1', '10.0.0.1', '10.0.0.1']);
    for (const m of of(bob, 'set-mapping')) expect(m.ttlMs).toBe(1_000);
    expect(statuses(bob)[0]?.status).toBe('active');
    h.advance(1_000);
    const after = h.assign(BOB, 'web', 'a.corp.example', V4B, 2);
    expect(resolves(after)).toHaveLength(1);
    expect(statuses(after)).toEqual([]); // answered when the resolution ends
    expect(of(after, 'set-mapping')).toEqual([]); // the working mapping keeps serving meanwhile
  });

  it('negative answers are cached too, for their TTL capped at maxNegativeCacheMs', () => {
    const h = new Harness(baseConfig(), { maxNegativeCacheMs: 5_000 });
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), { ...nx, ttlSeconds: 300 });
    h.advance(4_999);
    const cached = h.assign(ALICE, 'web', 'a.corp.example', V4, 2);
    expect(resolves(cached)).toEqual([]);
    expect(statuses(cached)).toEqual([
      expect.objectContaining({ status: 'inactive', reason: 'nxdomain', seq: 2 }),
    ]);
    h.advance(1);
    expect(resolves(h.assign(ALICE, 'web', 'a.corp.example', V4, 3))).toHaveLength(1);
  });

  it('a resolution that never answers ends at the 10 s deadline; its late answer is ignored', () => {
    const h = new Harness();
    const id = onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1));
    expect(h.policy.pollTimeout()).toBe(h.now + 10_000);
    expect(h.advance(9_999)).toEqual([]);
    const timedOut = h.advance(1);
    expect(statuses(timedOut)).toEqual([expect.objectContaining({ status: 'inactive', reason: 'timeout' })]);
    // No resolution deadline is left; the next timer is the binding's idle check, an hour after it came.
    expect(h.policy.pollTimeout()).toBe(h.now - 10_000 + 3_600_000);
    expect(h.resolve(id, ok(['10.0.0.1']))).toEqual([]);
    expect(h.policy.counters.lateAnswers).toBe(1);
    expect(h.policy.counters.resolutionDeadlines).toBe(1);
  });

  it('at most maxInFlight resolutions; the excess waits in a bounded queue, beyond it is refused and counted', () => {
    const h = new Harness(baseConfig(), { maxInFlight: 2, maxQueued: 1 });
    const sets = [
      V4,
      V4B,
      ['100.96.1.1', '100.96.1.2', '100.96.1.3', '100.96.1.4'],
      ['100.96.2.1', '100.96.2.2', '100.96.2.3', '100.96.2.4'],
    ];
    const ids = [0, 1, 2, 3].map((i) =>
      resolves(h.assign(ALICE, 'web', `d${i}.corp.example`, sets[i], i + 1)),
    );
    expect(ids.map((r) => r.length)).toEqual([1, 1, 0, 0]);
    expect(h.policy.inFlight()).toBe(2);
    expect(h.policy.queued()).toBe(1);
    expect(h.policy.counters.resolutionsRefused).toBe(1);
    expect(statuses(h.all)).toEqual([
      expect.objectContaining({
        domain: 'd3.corp.example',
        status: 'inactive',
        reason: 'resolver-busy',
        seq: 4,
      }),
    ]);
    // A slot frees: the queued domain starts.
    const first = ids[0]?.[0] as { id: number };
    const next = h.resolve(first.id, ok(['10.0.0.1']));
    expect(resolves(next).map((r) => r.domain)).toEqual(['d2.corp.example']);
    expect(h.policy.inFlight()).toBe(2);
    expect(h.policy.queued()).toBe(0);
  });
});

describe('GatewayPolicy: self-healing', () => {
  function failed(h: Harness): void {
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 4)), nx);
  }

  it('traffic to an unmapped proxy IP resolves again, ignoring the negative cache; success maps and sends an unsolicited active', () => {
    const h = new Harness();
    failed(h);
    h.policy.onResolveUnmapped(ALICE, '100.96.0.2', h.now);
    const id = onlyResolveId(h.drain());
    const healed = h.resolve(id, ok(['10.0.0.7']));
    expect(Object.values(mappings(healed))).toEqual(['10.0.0.7', '10.0.0.7', '10.0.0.7', '10.0.0.7']);
    // Echoes the last seq the client sent; the client accepts it (docs/decisions.md).
    expect(statuses(healed)).toEqual([
      { to: 'alice', resource: 'web', domain: 'a.corp.example', status: 'active', seq: 4 },
    ]);
    expect(h.policy.counters.unsolicitedStatuses).toBe(1);
  });

  it('backs off per domain: 1 s doubling to 30 s, however many proxy IPs and events', () => {
    const h = new Harness();
    failed(h);
    const started: number[] = [];
    const t0 = h.now;
    for (let t = 0; t <= 120_000; t += 250) {
      h.now = t0 + t;
      for (const p of V4) h.policy.onResolveUnmapped(ALICE, p, h.now);
      for (const r of resolves(h.drain())) {
        started.push(t);
        h.resolve(r.id, nx);
      }
    }
    expect(started).toEqual([0, 1_000, 3_000, 7_000, 15_000, 31_000, 61_000, 91_000]);
    expect(h.policy.counters.healSuppressed).toBeGreaterThan(100);
    // No status storm: the domain stayed inactive, so nothing unsolicited was sent.
    expect(h.policy.counters.unsolicitedStatuses).toBe(0);
  });

  it('the backoff starts over once the domain resolves again', () => {
    const h = new Harness();
    failed(h);
    const heal = () => {
      h.policy.onResolveUnmapped(ALICE, V4[0] as string, h.now);
      return resolves(h.drain());
    };
    h.resolve((heal()[0] as { id: number }).id, nx); // step 1 s used, next 2 s
    h.advance(1_000);
    h.resolve((heal()[0] as { id: number }).id, ok(['10.0.0.1'], [], 1)); // healed
    h.advance(1_000);
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 5)), nx); // gone again
    expect(heal()).toHaveLength(1); // at once, not after the old 2 s step
    expect(heal()).toHaveLength(0); // joined: in flight
  });

  it('unknown peers or proxy IPs are ignored and counted', () => {
    const h = new Harness();
    h.policy.onResolveUnmapped(ALICE, '100.96.9.9', h.now);
    h.policy.onResolveUnmapped(MALLORY, '100.96.0.1', h.now);
    h.policy.onMappingExpired(ALICE, 'junk', h.now);
    expect(h.drain()).toEqual([]);
    expect(h.policy.counters.unknownProxyEvents).toBe(3);
  });

  it('a mapping past its TTL is re-resolved in the background and replaced (for new sessions) without a status', () => {
    const h = new Harness();
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1'], [], 1));
    h.advance(2_000);
    h.policy.onMappingExpired(ALICE, '100.96.0.1', h.now);
    h.policy.onMappingExpired(ALICE, '100.96.0.2', h.now);
    const id = onlyResolveId(h.drain());
    const moved = h.resolve(id, ok(['10.0.0.2'], [], 60));
    expect(Object.values(mappings(moved))).toEqual(['10.0.0.2', '10.0.0.2', '10.0.0.2', '10.0.0.2']);
    expect(of(moved, 'remove-mapping')).toEqual([]); // set, never remove: live sessions keep their address
    expect(statuses(moved)).toEqual([]);
  });

  it('a failed refresh keeps the working mapping (stale beats cut off); a removed record withdraws it and says so', () => {
    const h = new Harness();
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1'], [], 1));
    h.advance(2_000);
    h.policy.onMappingExpired(ALICE, '100.96.0.1', h.now);
    const t = h.resolve(onlyResolveId(h.drain()), { outcome: 'timeout', ipv4: [], ipv6: [], ttlSeconds: 0 });
    expect(t).toEqual([]);
    expect(h.policy.snapshot()[0]?.mappings[0]).toEqual({ proxyIp: '100.96.0.1', realIp: '10.0.0.1' });

    h.policy.onMappingExpired(ALICE, '100.96.0.1', h.now);
    const gone = h.resolve(onlyResolveId(h.drain()), nx);
    expect(mappings(gone)).toEqual(Object.fromEntries(V4.map((p) => [p, null])));
    expect(statuses(gone)).toEqual([
      expect.objectContaining({ status: 'inactive', reason: 'nxdomain', seq: 1 }),
    ]);
  });
});

describe('GatewayPolicy: renumbering and goodbye', () => {
  it('a proxy IP given to another domain drops only the bindings that held it, before the new one is installed', () => {
    const h = new Harness();
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1']));
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'c.corp.example', V4B, 2)), ok(['10.0.0.3']));
    expect(resolves(h.assign(BOB, 'web', 'a.corp.example', V4, 1))).toEqual([]); // from the cache
    const out = h.assign(ALICE, 'web', 'b.corp.example', V4, 3);
    const removed = of(out, 'remove-mapping').map((c) => c.proxyIp);
    expect(removed.sort()).toEqual([...V4].sort());
    expect(of(out, 'remove-mapping').every((c) => c.clientId === 'alice')).toBe(true);
    // Removal precedes re-registration, and the new registration carries no address from a.corp.example.
    const firstSet = out.findIndex((c) => c.type === 'set-mapping');
    expect(out.findLastIndex((c) => c.type === 'remove-mapping')).toBeLessThan(firstSet);
    expect(Object.values(mappings(out))).toEqual([null, null, null, null]);
    expect(resolves(out).map((r) => r.domain)).toEqual(['b.corp.example']);
    expect(h.policy.counters.renumberResets).toBe(1);
    // c.corp.example kept its mapping, and Bob is untouched.
    const alice = h.policy.snapshot().filter((b) => b.client === 'alice');
    expect(alice.map((b) => b.domain).sort()).toEqual(['b.corp.example', 'c.corp.example']);
    expect(alice.find((b) => b.domain === 'c.corp.example')?.mappings[0]?.realIp).toBe('10.0.0.3');
    expect(h.policy.snapshot().filter((b) => b.client === 'bob')).toHaveLength(1);
  });

  it('the same domain with new proxy IPs replaces the old ones', () => {
    const h = new Harness();
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1']));
    const out = h.assign(ALICE, 'web', 'a.corp.example', V4B, 2);
    expect(
      of(out, 'remove-mapping')
        .map((c) => c.proxyIp)
        .sort(),
    ).toEqual([...V4].sort());
    expect(Object.values(mappings(out))).toEqual(['10.0.0.1', '10.0.0.1', '10.0.0.1', '10.0.0.1']);
    expect(statuses(out)[0]).toEqual(expect.objectContaining({ status: 'active', seq: 2 }));
  });

  it('Goodbye drops the client’s mappings', () => {
    const h = new Harness();
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1']));
    h.policy.onControl(ALICE, MessageType.Goodbye, '', h.now);
    expect(of(h.drain(), 'remove-mapping')).toHaveLength(4);
    expect(h.policy.mappingCount()).toBe(0);
  });
});

describe('GatewayPolicy: config reload', () => {
  function running(): Harness {
    const h = new Harness();
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1']));
    h.resolve(onlyResolveId(h.assign(ALICE, 'v4', 'v4.corp.example', V4B, 2)), ok(['10.0.0.2']));
    h.resolve(
      onlyResolveId(
        h.assign(BOB, 'web', 'b.corp.example', ['100.96.3.1', '100.96.3.2', '100.96.3.3', '100.96.3.4'], 1),
      ),
      ok(['10.0.0.3']),
    );
    return h;
  }

  it('a removed client loses its peer (and with it every mapping and session)', () => {
    const h = running();
    const cfg = baseConfig();
    h.policy.setConfig({ ...cfg, clients: cfg.clients.filter((c) => c.id !== 'bob') }, h.now);
    expect(h.drain()).toEqual([{ type: 'remove-peer', clientId: 'bob', publicKey: BOB }]);
    h.policy.onResolveUnmapped(BOB, '100.96.3.1', h.now);
    expect(h.drain()).toEqual([]);
  });

  it('a removed resource loses its mappings at once and its clients hear inactive', () => {
    const h = running();
    const cfg = baseConfig();
    h.policy.setConfig({ ...cfg, resources: cfg.resources.filter((r) => r.id !== 'v4') }, h.now);
    const out = h.drain();
    expect(
      of(out, 'remove-mapping')
        .map((c) => c.proxyIp)
        .sort(),
    ).toEqual([...V4B].sort());
    expect(statuses(out)).toEqual([
      {
        to: 'alice',
        resource: 'v4',
        domain: 'v4.corp.example',
        status: 'inactive',
        seq: 2,
        reason: 'resource-removed',
      },
    ]);
    // And it cannot come back through an AssignedIps.
    expect(statuses(h.assign(ALICE, 'v4', 'v4.corp.example', V4B, 3))[0]?.reason).toBe('unknown-resource');
  });

  it('a resource no longer allowed for a client, or a pattern that no longer matches, is removed too', () => {
    const h = running();
    const cfg = baseConfig();
    h.policy.setConfig(
      {
        resources: cfg.resources.map((r) =>
          r.id === 'web' ? resource('web', 'b.corp.example', { ports: ['tcp/443', 'icmp'] }) : r,
        ),
        clients: [client('alice', ALICE, ['v4']), client('bob', BOB, ['web'], ['100.64.0.3'])],
      },
      h.now,
    );
    const out = h.drain();
    expect(
      of(out, 'remove-mapping')
        .map((c) => c.proxyIp)
        .sort(),
    ).toEqual([...V4].sort());
    expect(statuses(out).map((s) => [s.to, s.domain, s.reason])).toEqual([
      ['alice', 'a.corp.example', 'resource-not-allowed'],
    ]);
    expect(
      h.policy
        .snapshot()
        .map((b) => `${b.client}:${b.domain}`)
        .sort(),
    ).toEqual(['alice:v4.corp.example', 'bob:b.corp.example']);
  });

  it('changed ports are re-installed with the same addresses', () => {
    const h = running();
    const cfg = baseConfig();
    h.policy.setConfig(
      {
        ...cfg,
        resources: cfg.resources.map((r) =>
          r.id === 'web' ? resource('web', '*.corp.example', { ports: ['tcp/80'] }) : r,
        ),
      },
      h.now,
    );
    const out = h.drain();
    expect(of(out, 'set-mapping')).toHaveLength(8);
    for (const m of of(out, 'set-mapping')) {
      expect(m.ports).toEqual(['tcp/80']);
      expect(m.realIp).toMatch(/^10\.0\.0\./);
    }
    expect(of(out, 'remove-mapping')).toEqual([]);
  });

  it('new tunnel IPs replace the peer and re-install its mappings; an unchanged config does nothing', () => {
    const h = running();
    h.policy.setConfig(baseConfig(), h.now);
    expect(h.drain()).toEqual([]);
    const cfg = baseConfig();
    h.policy.setConfig(
      {
        ...cfg,
        clients: [client('alice', ALICE, ['web', 'v4'], ['100.64.0.9']), cfg.clients[1] as GatewayClient],
      },
      h.now,
    );
    const out = h.drain();
    expect(out[0]).toEqual({
      type: 'add-peer',
      clientId: 'alice',
      publicKey: ALICE,
      allowedIps: ['100.64.0.9/32'],
    });
    expect(of(out, 'set-mapping')).toHaveLength(8);
  });

  it('a client whose key changed is a new peer', () => {
    const h = running();
    const cfg = baseConfig();
    h.policy.setConfig(
      { ...cfg, clients: [cfg.clients[0] as GatewayClient, client('bob', MALLORY, ['web'], ['100.64.0.3'])] },
      h.now,
    );
    expect(h.drain()).toEqual([
      { type: 'remove-peer', clientId: 'bob', publicKey: BOB },
      { type: 'add-peer', clientId: 'bob', publicKey: MALLORY, allowedIps: ['100.64.0.3/32'] },
    ]);
  });
});

describe('GatewayPolicy: bounded state', () => {
  it('past its limit, a new pair takes the place of the least recently used one: never a lockout', () => {
    const h = new Harness(baseConfig(), { maxBindingsPerClient: 2 });
    const V4C = ['100.96.1.1', '100.96.1.2', '100.96.1.3', '100.96.1.4'];
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1']));
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'b.corp.example', V4B, 2)), ok(['10.0.0.2']));
    // a is asserted again, so b is the least recently used.
    h.advance(10);
    h.assign(ALICE, 'web', 'a.corp.example', V4, 3);
    h.advance(10);
    const third = h.assign(ALICE, 'web', 'c.corp.example', V4C, 4);
    expect(statuses(third)).toEqual([
      expect.objectContaining({ domain: 'b.corp.example', status: 'inactive', reason: 'evicted', seq: 2 }),
    ]);
    expect(
      of(third, 'remove-mapping')
        .map((c) => c.proxyIp)
        .sort(),
    ).toEqual([...V4B].sort());
    expect(resolves(third).map((r) => r.domain)).toEqual(['c.corp.example']);
    expect(h.policy.bindingCount('alice')).toBe(2);
    expect(h.policy.counters.bindingsEvicted).toBe(1);
    // Another client has its own share.
    expect(resolves(h.assign(BOB, 'web', 'b.corp.example', V4B, 1))).toHaveLength(1);
  });

  it('a binding still carrying traffic is not the one evicted, however long ago it was asserted', () => {
    const idle = new Map<string, number>();
    const h = new Harness(baseConfig(), {
      maxBindingsPerClient: 2,
      mappingIdleMs: (_key, proxyIp) => idle.get(proxyIp),
    });
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1']));
    h.advance(10);
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'b.corp.example', V4B, 2)), ok(['10.0.0.2']));
    h.advance(60_000);
    // a was asserted first, but a session used one of its proxy IPs a second ago.
    idle.set('100.96.0.1', 1_000);
    const third = h.assign(
      ALICE,
      'web',
      'c.corp.example',
      ['100.96.1.1', '100.96.1.2', '100.96.1.3', '100.96.1.4'],
      3,
    );
    expect(statuses(third).map((s) => s.domain)).toEqual(['b.corp.example']);
    expect(
      h.policy
        .snapshot()
        .map((b) => b.domain)
        .sort(),
    ).toEqual(['a.corp.example', 'c.corp.example']);
  });

  it('forgets a domain once no client uses it', () => {
    const h = new Harness();
    const id = onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1));
    h.policy.onControl(ALICE, MessageType.Goodbye, '', h.now);
    h.drain();
    expect(h.resolve(id, ok(['10.0.0.1']))).toEqual([]);
    // Nothing cached survives: a new registration resolves again.
    expect(resolves(h.assign(ALICE, 'web', 'a.corp.example', V4, 2))).toHaveLength(1);
  });
});

describe('GatewayPolicy: what one client may cost', () => {
  it('a name resolving to loopback, link-local, metadata or the gateway itself is never mapped', () => {
    const destinations = new DestinationFilter();
    destinations.setGatewayAddresses(['198.18.2.1']);
    const h = new Harness(baseConfig(), { destinations });
    const cases: Array<[string, string[]]> = [
      ['meta.corp.example', ['169.254.169.254']],
      ['loop.corp.example', ['127.0.0.1']],
      ['self.corp.example', ['198.18.2.1']],
    ];
    cases.forEach(([domain, reals], i) => {
      const proxies = [1, 2, 3, 4].map((k) => `100.96.${i + 1}.${k}`);
      const id = onlyResolveId(h.assign(ALICE, 'web', domain, proxies, 1));
      const out = h.resolve(id, ok(reals));
      expect(of(out, 'set-mapping').every((c) => c.realIp === undefined)).toBe(true);
      expect(statuses(out)).toEqual([
        expect.objectContaining({ domain, status: 'inactive', reason: 'destination-not-allowed' }),
      ]);
    });
    expect(h.policy.counters.destinationsRefused).toBe(3);
    // A mixed answer keeps the allowed address only.
    const id = onlyResolveId(h.assign(ALICE, 'web', 'mixed.corp.example', V4B, 1));
    const out = h.resolve(id, ok(['127.0.0.1', '10.0.0.9']));
    expect(new Set(Object.values(mappings(out)))).toEqual(new Set(['10.0.0.9']));
    expect(statuses(out)).toEqual([expect.objectContaining({ status: 'active' })]);
  });

  it('a resource may allow a refused range explicitly', () => {
    const allow = parseCidr('127.0.0.0/8');
    const h = new Harness({
      ...baseConfig(),
      resources: [resource('web', '*.corp.example', { allowDestinations: allow ? [allow] : [] })],
    });
    const id = onlyResolveId(h.assign(ALICE, 'web', 'loop.corp.example', V4, 1));
    const out = h.resolve(id, ok(['127.0.0.1']));
    expect(Object.values(mappings(out))).toContain('127.0.0.1');
  });

  it('a binding unused for bindingIdleMs is dropped and the client told; one in use is kept', () => {
    const idle = new Map<string, number>();
    const h = new Harness(baseConfig(), {
      bindingIdleMs: 60_000,
      mappingIdleMs: (_key, proxyIp) => idle.get(proxyIp),
    });
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'a.corp.example', V4, 1)), ok(['10.0.0.1']));
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'b.corp.example', V4B, 1)), ok(['10.0.0.2']));
    // b's proxy IPs carry a session; a's have been idle since they were installed.
    for (const p of V4B) idle.set(p, 0);
    for (const p of V4) idle.set(p, 60_000);
    const out = h.advance(60_000);
    expect(
      of(out, 'remove-mapping')
        .map((c) => c.proxyIp)
        .sort(),
    ).toEqual([...V4].sort());
    expect(statuses(out)).toEqual([
      expect.objectContaining({ domain: 'a.corp.example', status: 'inactive', reason: 'expired' }),
    ]);
    expect(h.policy.bindingCount('alice')).toBe(1);
    // b's session ends; it goes a full idle period later, not before.
    for (const p of V4B) idle.set(p, 1);
    expect(of(h.advance(59_000), 'remove-mapping')).toEqual([]);
    for (const p of V4B) idle.set(p, 60_000);
    expect(of(h.advance(1_000), 'remove-mapping')).toHaveLength(4);
    expect(h.policy.counters.bindingsExpired).toBe(2);
    expect(h.policy.bindingCount('alice')).toBe(0);
  });

  it('a client with its share of resolutions pending has its newest refused; others are not', () => {
    const h = new Harness(baseConfig(), { maxPendingResolutionsPerClient: 2 });
    const block = (n: number) => [0, 1, 2, 3].map((k) => `100.96.${n}.${k + 1}`);
    const ids = [0, 1].map((n) => onlyResolveId(h.assign(ALICE, 'web', `n${n}.corp.example`, block(n), 1)));
    const refused = h.assign(ALICE, 'web', 'n2.corp.example', block(2), 1);
    expect(resolves(refused)).toEqual([]);
    expect(statuses(refused)).toEqual([
      expect.objectContaining({ status: 'inactive', reason: 'resolver-busy' }),
    ]);
    // Joining a resolution already in flight costs nothing; another client has its own share.
    expect(resolves(h.assign(BOB, 'web', 'n0.corp.example', block(10), 1))).toEqual([]);
    expect(resolves(h.assign(BOB, 'web', 'b0.corp.example', block(11), 1))).toHaveLength(1);
    // An answer gives the share back.
    h.resolve(ids[0] as number, ok(['10.0.0.1']));
    expect(resolves(h.assign(ALICE, 'web', 'n2.corp.example', block(2), 2))).toHaveLength(1);
    expect(h.policy.counters.resolutionsRefusedForClient).toBe(1);
  });

  it("traffic to unmapped proxy IPs heals only within the client's share of the resolver", () => {
    const h = new Harness(baseConfig(), { maxPendingResolutionsPerClient: 1 });
    const block = (n: number) => [0, 1, 2, 3].map((k) => `100.96.${n}.${k + 1}`);
    // Two names end without addresses (nothing cached for long), then one resolution of another name waits.
    for (const n of [0, 1]) {
      const id = onlyResolveId(h.assign(ALICE, 'web', `n${n}.corp.example`, block(n), 1));
      h.resolve(id, { outcome: 'timeout', ipv4: [], ipv6: [], ttlSeconds: 0 });
    }
    const pending = onlyResolveId(h.assign(ALICE, 'web', 'n2.corp.example', block(2), 1));
    h.policy.onResolveUnmapped(ALICE, block(0)[0] as string, h.now);
    expect(resolves(h.drain())).toEqual([]);
    expect(h.policy.counters.resolutionsRefusedForClient).toBe(1);
    // Once the share is free, the same traffic heals.
    h.resolve(pending, ok(['10.0.0.3']));
    h.policy.onResolveUnmapped(ALICE, block(1)[0] as string, h.now);
    expect(resolves(h.drain())).toHaveLength(1);
  });
});

describe('GatewayPolicy: eviction within one domain', () => {
  it('evicting the last binding of the very domain being added still resolves and answers the new one', () => {
    const h = new Harness(baseConfig(), { maxBindingsPerClient: 1 });
    h.resolve(onlyResolveId(h.assign(ALICE, 'web', 'v4.corp.example', V4, 1)), ok(['10.0.0.1']));
    h.advance(61_000); // past the answer's TTL: the new binding needs a resolution of its own
    // The same name under the other resource: the one binding to evict is a.corp.example's own.
    const out = h.assign(ALICE, 'v4', 'v4.corp.example', V4B, 2);
    expect(statuses(out)).toContainEqual(
      expect.objectContaining({
        resource: 'web',
        domain: 'v4.corp.example',
        status: 'inactive',
        reason: 'evicted',
      }),
    );
    const answered = h.resolve(onlyResolveId(out), ok(['10.0.0.1']));
    expect(statuses(answered)).toContainEqual(
      expect.objectContaining({ resource: 'v4', domain: 'v4.corp.example', status: 'active', seq: 2 }),
    );
    expect(h.policy.bindingCount('alice')).toBe(1);
  });
});
