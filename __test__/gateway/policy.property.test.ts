// Property test of the gateway policy: random interleavings of AssignedIps (including renumbering and
// garbage), resolutions answered late, out of order or never, unmapped-traffic and expired-mapping events,
// reloads and time passing, against a model of the runtime's mapping table. Whatever happens:
// - no proxy IP is ever mapped to an address of another domain (stale state never routes to the wrong
//   service), nor of the other family, nor outside the answer the policy last applied for its domain;
// - every mapping in the runtime belongs to a registered (client, proxy IP), and vice versa;
// - no resolution beyond the in-flight limit, a timer whenever one is in flight, and a removed client's
//   peer is never addressed again until it is added back.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { GatewayClient, ResourceConfig } from '../../ts/gateway/config.js';
import { GatewayPolicy, type PolicyConfig } from '../../ts/gateway/policy.js';
import { DomainPattern } from '../../ts/net/pattern.js';
import { MessageType } from '../../ts/protocol/control.js';

const KEYS = ['j94dl3TnzOFymO2TF7GeJ2ev7qTp7QXCk5RbRIehKUA=', 'GORSExdMS2h85XY4zEnCx2eENvcJ4fgwJSDr+o+NdX4='];
const DOMAINS = 3;
const MAX_IN_FLIGHT = 3;

const resources: ResourceConfig[] = [
  { id: 'web', pattern: DomainPattern.parse('*.corp.example'), ipStack: 'dual' },
  { id: 'v4', pattern: DomainPattern.parse('**.corp.example'), ipStack: 'ipv4', ports: ['tcp/80'] },
];
const clients = (allowed: string[][]): GatewayClient[] =>
  KEYS.map((k, i) => ({
    id: `c${i}`,
    publicKey: k,
    tunnelIps: [`100.64.0.${i + 2}`],
    resources: allowed[i] ?? [],
  }));

/** Domain d resolves to 10.0.d.x and 2001:db8:(d+1)::x, so any real address names its domain. */
const domainOf = (real: string) =>
  real.includes(':') ? Number.parseInt(real.split(':')[2] ?? '', 16) - 1 : Number(real.split('.')[2]);

/** Proxy IPs from a tiny pool, so that clients re-use them for other domains (renumbering). */
const proxySet = (base: number, v6: boolean) => [
  ...[0, 1, 2, 3].map((i) => `100.96.0.${base * 4 + i + 1}`),
  ...(v6 ? [0, 1, 2, 3].map((i) => `fd00:2021:1111:8000::${(base * 4 + i + 1).toString(16)}`) : []),
];

type Op =
  | { t: 'assign'; client: number; resource: number; domain: number; base: number; v6: boolean; seq: number }
  | { t: 'garbage'; client: number; body: string }
  | { t: 'goodbye'; client: number }
  | { t: 'answer'; pick: number; kind: 'ok' | 'nx' | 'timeout'; n4: number; n6: number; ttl: number }
  | { t: 'unmapped'; client: number; base: number }
  | { t: 'expired'; client: number; base: number }
  | { t: 'reload'; allowed: number }
  | { t: 'advance'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('assign' as const),
      client: fc.nat(1),
      resource: fc.nat(1),
      domain: fc.nat(DOMAINS - 1),
      base: fc.nat(2),
      v6: fc.boolean(),
      seq: fc.nat(50),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant('garbage' as const), client: fc.nat(1), body: fc.string() }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('goodbye' as const), client: fc.nat(1) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('answer' as const),
      pick: fc.nat(10),
      kind: fc.constantFrom('ok' as const, 'ok' as const, 'nx' as const, 'timeout' as const),
      n4: fc.nat(3),
      n6: fc.nat(2),
      ttl: fc.nat(4),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('unmapped' as const), client: fc.nat(1), base: fc.nat(2) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('expired' as const), client: fc.nat(1), base: fc.nat(2) }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reload' as const), allowed: fc.nat(3) }) },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 12_000 }) }),
  },
);

const ALLOWED = [
  [
    ['web', 'v4'],
    ['web', 'v4'],
  ],
  [['web'], ['v4']],
  [[], ['web', 'v4']],
  [['v4'], []],
];

function runScenario(ops: Op[]): void {
  let now = 0;
  const config = (allowed: number): PolicyConfig => ({ resources, clients: clients(ALLOWED[allowed] ?? []) });
  const policy = new GatewayPolicy(config(0), { maxInFlight: MAX_IN_FLIGHT, maxQueued: 2 }, now);
  const runtime = new Map<string, Map<string, string | null>>(); // peer → proxy → real
  const pending: Array<{ id: number; domain: string; at: number }> = [];
  /** The last answer the policy was given per domain, and whether it had addresses. */
  const answered = new Map<string, { v4: string[]; v6: string[] }>();

  const drain = () => {
    for (let c = policy.pollCommand(); c; c = policy.pollCommand()) {
      switch (c.type) {
        case 'add-peer':
          runtime.set(c.publicKey, new Map());
          break;
        case 'remove-peer':
          expect(runtime.delete(c.publicKey)).toBe(true);
          break;
        case 'set-mapping': {
          const peer = runtime.get(c.publicKey);
          expect(peer, `set-mapping for a peer that is not there (${c.clientId})`).toBeDefined();
          peer?.set(c.proxyIp, c.realIp ?? null);
          break;
        }
        case 'remove-mapping':
          expect(runtime.get(c.publicKey), 'remove-mapping for a missing peer').toBeDefined();
          runtime.get(c.publicKey)?.delete(c.proxyIp);
          break;
        case 'resolve':
          pending.push({ id: c.id, domain: c.domain, at: now });
          break;
        default:
          break;
      }
    }
  };
  drain();

  for (const o of ops) {
    switch (o.t) {
      case 'assign': {
        const body = JSON.stringify({
          resource: resources[o.resource]?.id,
          domain: `d${o.domain}.corp.example`,
          proxy_ips: proxySet(o.base, o.v6),
          seq: o.seq,
        });
        policy.onControl(KEYS[o.client] as string, MessageType.AssignedIps, body, now);
        break;
      }
      case 'garbage':
        policy.onControl(KEYS[o.client] as string, MessageType.AssignedIps, o.body, now);
        break;
      case 'goodbye':
        policy.onControl(KEYS[o.client] as string, MessageType.Goodbye, '', now);
        break;
      case 'answer': {
        if (pending.length === 0) break;
        const [p] = pending.splice(o.pick % pending.length, 1);
        if (!p) break;
        const d = Number(p.domain.slice(1, p.domain.indexOf('.')));
        // Past its 10 s deadline the policy has given up on it and ignores the answer.
        const late = now >= p.at + 10_000;
        const v4 = Array.from({ length: o.n4 }, (_, i) => `10.0.${d}.${(i * 37) % 250}`);
        const v6 = Array.from({ length: o.n6 }, (_, i) => `2001:db8:${(d + 1).toString(16)}::${i + 1}`);
        if (o.kind === 'ok') {
          policy.onResolution(p.id, { outcome: 'ok', ipv4: v4, ipv6: v6, ttlSeconds: o.ttl }, now);
          if (late) break;
          if (v4.length + v6.length > 0) answered.set(p.domain, { v4, v6 });
          else answered.delete(p.domain);
        } else if (o.kind === 'nx') {
          policy.onResolution(p.id, { outcome: 'nxdomain', ipv4: [], ipv6: [], ttlSeconds: o.ttl }, now);
          if (!late) answered.delete(p.domain);
        } else {
          policy.onResolution(p.id, { outcome: 'timeout', ipv4: [], ipv6: [], ttlSeconds: 0 }, now);
        }
        break;
      }
      case 'unmapped':
        policy.onResolveUnmapped(KEYS[o.client] as string, proxySet(o.base, false)[0] as string, now);
        break;
      case 'expired':
        policy.onMappingExpired(KEYS[o.client] as string, proxySet(o.base, false)[1] as string, now);
        break;
      case 'reload':
        policy.setConfig(config(o.allowed), now);
        break;
      case 'advance': {
        now += o.ms;
        const t = policy.pollTimeout();
        if (t !== undefined && t <= now) policy.handleTimeout(now);
        break;
      }
    }
    drain();

    // Invariants after every step.
    expect(policy.inFlight()).toBeLessThanOrEqual(MAX_IN_FLIGHT);
    if (policy.inFlight() > 0) expect(policy.pollTimeout()).toBeDefined();
    const snapshot = policy.snapshot();
    let registered = 0;
    for (const [, proxies] of runtime) registered += proxies.size;
    expect(registered).toBe(policy.mappingCount());
    for (const b of snapshot) {
      const peer = runtime.get(KEYS[Number(b.client.slice(1))] as string);
      const d = Number(b.domain.slice(1, b.domain.indexOf('.')));
      for (const m of b.mappings) {
        expect(peer?.has(m.proxyIp), `${b.client} ${m.proxyIp} registered in the runtime`).toBe(true);
        const real = peer?.get(m.proxyIp) ?? null;
        expect(real ?? null).toBe(m.realIp ?? null);
        if (real === null) continue;
        expect(domainOf(real), `${m.proxyIp} of ${b.domain} → ${real}`).toBe(d);
        expect(real.includes(':')).toBe(m.proxyIp.includes(':'));
        // A timeout leaves the last answer serving; an authoritative one never leaves an address it lacks.
        const last = answered.get(b.domain);
        expect(
          last && [...last.v4, ...last.v6].includes(real),
          `${real} in the last answer for ${b.domain}`,
        ).toBe(true);
      }
    }
  }
}

describe('GatewayPolicy under random inputs', () => {
  it('never maps a proxy IP to another domain, and runtime and policy agree', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 80, size: 'large' }), (ops) => runScenario(ops)),
      { numRuns: 300 },
    );
  });
});
