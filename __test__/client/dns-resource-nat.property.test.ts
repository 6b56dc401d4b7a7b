// Property tests over random interleavings of queries, packets, statuses (right, stale, duplicated, bogus,
// lost), timers, clears and time. Properties (2)-(5) drive the machine directly from a random command list and
// look at every key's state before and after each command; property (1) runs the machine in the lossy world.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DnsResourceNat,
  type Effect,
  type NatKey,
  type NatState,
  normalizeDomain,
} from '../../ts/client/dns-resource-nat.js';
import { keyId, LossyWorld, startApp } from './support/lossy-world.js';

const MAX_SENDS = 4; // small, so that runs reach the limit often
const INTERVAL = 2_000;

// Domains spelled in different ways on purpose: the machine must treat them as the same name.
const DOMAIN_SPELLINGS = ['a.corp.example', 'B.Corp.Example.', 'c.corp.example', 'c.CORP.example.'];
const GATEWAYS = ['g1', 'g2'];
const RESOURCES = ['r1', 'r2'];
const PAIRS = GATEWAYS.flatMap((gatewayId) => RESOURCES.map((resourceId) => ({ gatewayId, resourceId })));
const UNIVERSE: NatKey[] = [...new Set(DOMAIN_SPELLINGS.map(normalizeDomain))].flatMap((domain) =>
  PAIRS.map((p) => ({ ...p, domain })),
);

type Cmd =
  | { kind: 'query'; domain: number; pairs: number[]; dt: number }
  | { kind: 'noise'; dt: number }
  | { kind: 'packet'; domain: number; pair: number; aim: Aim; dt: number }
  | {
      kind: 'status';
      domain: number;
      pair: number;
      aim: Aim;
      status: 'active' | 'inactive' | 'bogus';
      seq: 'latest' | 'older' | 'none' | 'future';
      dt: number;
    }
  | { kind: 'timer'; dt: number }
  | { kind: 'gatewayLost'; gateway: number }
  | { kind: 'resourceRemoved'; resource: number };

/**
 * Most packets and statuses aim at an entry that exists (the n-th tracked one, modulo their number), the rest
 * at the explicit (domain, pair), which is often unknown: otherwise random keys would rarely hit anything.
 */
type Aim = { tracked: boolean; nth: number };
const aim: fc.Arbitrary<Aim> = fc.record({
  tracked: fc.integer({ min: 0, max: 9 }).map((x) => x < 8),
  nth: fc.nat(),
});
const dt = fc.integer({ min: 0, max: 6_000 });
const domainIdx = fc.nat(DOMAIN_SPELLINGS.length - 1);
const pairIdx = fc.nat(PAIRS.length - 1);
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('query' as const),
      domain: domainIdx,
      pairs: fc.subarray([0, 1, 2, 3], { maxLength: 2 }),
      dt,
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('noise' as const), dt }) },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('packet' as const), domain: domainIdx, pair: pairIdx, aim, dt }),
  },
  {
    weight: 14,
    arbitrary: fc.record({
      kind: fc.constant('status' as const),
      domain: domainIdx,
      pair: pairIdx,
      aim,
      status: fc.constantFrom('active' as const, 'active' as const, 'inactive' as const, 'bogus' as const),
      seq: fc.constantFrom(
        'latest' as const,
        'latest' as const,
        'older' as const,
        'none' as const,
        'future' as const,
      ),
      dt,
    }),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('timer' as const), dt }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('gatewayLost' as const), gateway: fc.nat(GATEWAYS.length - 1) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('resourceRemoved' as const),
      resource: fc.nat(RESOURCES.length - 1),
    }),
  },
);
const cmds = fc.array(cmd, { minLength: 1, maxLength: 150, size: 'max' });

interface Step {
  cmd: Cmd;
  now: number;
  before: Map<string, NatState | undefined>;
  after: Map<string, NatState | undefined>;
  effects: Effect[];
  /** Effects of the immediate re-delivery of a status (only with `duplicateStatuses`). */
  duplicateEffects: Effect[];
}

function states(nat: DnsResourceNat): Map<string, NatState | undefined> {
  return new Map(UNIVERSE.map((k) => [keyId(k), nat.state(k)]));
}

function drain(nat: DnsResourceNat): Effect[] {
  const out: Effect[] = [];
  for (let e = nat.pollEffect(); e !== undefined; e = nat.pollEffect()) out.push(e);
  return out;
}

function effectKey(e: Effect): NatKey {
  return e.type === 'send-assigned-ips' ? e : e.key;
}

function target(nat: DnsResourceNat, c: { domain: number; pair: number; aim: Aim }): NatKey {
  const tracked = c.aim.tracked ? nat.entries() : [];
  const picked = tracked[c.aim.nth % Math.max(tracked.length, 1)];
  if (picked !== undefined)
    return { gatewayId: picked.gatewayId, domain: picked.domain, resourceId: picked.resourceId };
  return { ...(PAIRS[c.pair] as (typeof PAIRS)[number]), domain: DOMAIN_SPELLINGS[c.domain] as string };
}

function run(list: Cmd[], duplicateStatuses = false): Step[] {
  const nat = new DnsResourceNat({ maxUnansweredSends: MAX_SENDS, resendIntervalMs: INTERVAL });
  let now = 0;
  const steps: Step[] = [];
  for (const c of list) {
    const before = states(nat);
    let duplicateEffects: Effect[] = [];
    switch (c.kind) {
      case 'query': {
        now += c.dt;
        const matches = c.pairs.map((i) => ({
          ...(PAIRS[i] as (typeof PAIRS)[number]),
          proxyIps: ['100.96.0.1'],
        }));
        nat.onDnsQuery(DOMAIN_SPELLINGS[c.domain] as string, matches, now);
        break;
      }
      case 'noise':
        now += c.dt;
        nat.onDnsQuery('www.example.com', [], now);
        break;
      case 'packet':
        now += c.dt;
        nat.onOutgoingPacket(target(nat, c), now);
        break;
      case 'status': {
        now += c.dt;
        const key = target(nat, c);
        const latest = nat.entries().find((e) => keyId(e) === keyId(key))?.lastSentSeq ?? 1;
        const seq = { latest, older: latest - 1, none: undefined, future: latest + 3 }[c.seq];
        const status = { domain: key.domain, resourceId: key.resourceId, status: c.status as 'active', seq };
        nat.onDomainStatus(key.gatewayId, status, now);
        if (duplicateStatuses) {
          const first = drain(nat);
          nat.onDomainStatus(key.gatewayId, status, now);
          duplicateEffects = drain(nat);
          steps.push({ cmd: c, now, before, after: states(nat), effects: first, duplicateEffects });
          continue;
        }
        break;
      }
      case 'timer': {
        const deadline = nat.pollTimeout();
        now = deadline !== undefined && deadline <= now + c.dt ? Math.max(now, deadline) : now + c.dt;
        nat.handleTimeout(now);
        break;
      }
      case 'gatewayLost':
        nat.onGatewayLost(GATEWAYS[c.gateway] as string);
        break;
      case 'resourceRemoved':
        nat.onResourceRemoved(RESOURCES[c.resource] as string);
        break;
    }
    steps.push({ cmd: c, now, before, after: states(nat), effects: drain(nat), duplicateEffects });
  }
  return steps;
}

/** Does this command name `key` in a query for `key`'s own domain? */
function isOwnQuery(c: Cmd, key: NatKey): boolean {
  if (c.kind !== 'query' || normalizeDomain(DOMAIN_SPELLINGS[c.domain] as string) !== key.domain)
    return false;
  return c.pairs.some(
    (i) => PAIRS[i]?.gatewayId === key.gatewayId && PAIRS[i]?.resourceId === key.resourceId,
  );
}

function isClearOf(c: Cmd, key: NatKey): boolean {
  return (
    (c.kind === 'gatewayLost' && GATEWAYS[c.gateway] === key.gatewayId) ||
    (c.kind === 'resourceRemoved' && RESOURCES[c.resource] === key.resourceId)
  );
}

describe('DnsResourceNat properties', () => {
  it('(1) with any loss below 100 % each way, every domain applications keep querying ends confirmed', () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer(),
          lossToGateway: fc.double({ min: 0, max: 0.8, noNaN: true }),
          lossToClient: fc.double({ min: 0, max: 0.8, noNaN: true }),
          duplicateRate: fc.double({ min: 0, max: 0.5, noNaN: true }),
          domains: fc.integer({ min: 1, max: 8 }),
          attemptEveryMs: fc.integer({ min: 300, max: 30_000 }),
          noise: fc.boolean(),
        }),
        (p) => {
          const world = new LossyWorld({
            seed: p.seed,
            lossToGateway: p.lossToGateway,
            lossToClient: p.lossToClient,
            duplicateRate: p.duplicateRate,
            latencyMs: { min: 1, max: 400 },
            nat: { maxUnansweredSends: MAX_SENDS },
          });
          const apps = [...Array(p.domains).keys()].map((i) =>
            startApp(
              world,
              `app-${i}.corp.example`,
              { gatewayId: GATEWAYS[i % 2] as string, resourceId: 'r1', proxyIps: ['100.96.0.1'] },
              {
                startAt: world.rng.int(0, 10_000),
                attemptEveryMs: p.attemptEveryMs,
                maxAttempts: Number.POSITIVE_INFINITY,
              },
            ),
          );
          if (p.noise) {
            const noise = () => {
              world.query('www.example.com', []);
              if (apps.some((a) => !a.done())) world.at(world.now + world.rng.int(100, 3_000), noise);
            };
            world.at(0, noise);
          }
          world.run(48 * 3_600_000);
          expect(world.violations.slice(0, 5)).toEqual([]);
          for (let i = 0; i < p.domains; i++) {
            const key = {
              gatewayId: GATEWAYS[i % 2] as string,
              domain: `app-${i}.corp.example`,
              resourceId: 'r1',
            };
            expect(world.nat.state(key)).toBe('confirmed');
          }
          expect(world.idle).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('(2) a failed entry sends nothing, and stays failed, until its own domain is queried', () => {
    fc.assert(
      fc.property(cmds, (list) => {
        for (const step of run(list)) {
          for (const key of UNIVERSE) {
            const id = keyId(key);
            if (step.before.get(id) !== 'failed' || isOwnQuery(step.cmd, key)) continue;
            const sent = step.effects.some((e) => e.type === 'send-assigned-ips' && keyId(e) === id);
            expect(sent).toBe(false);
            const after = step.after.get(id);
            const queriedOwnDomain =
              step.cmd.kind === 'query' &&
              normalizeDomain(DOMAIN_SPELLINGS[step.cmd.domain] as string) === key.domain;
            const allowed =
              after === 'failed' ||
              (after === 'recreating' && queriedOwnDomain) ||
              (after === 'confirmed' && step.cmd.kind === 'status') ||
              (after === undefined && isClearOf(step.cmd, key));
            expect(allowed).toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('(3) the messages per entry are bounded: spaced by the resend interval, at most maxUnansweredSends per own query', () => {
    fc.assert(
      fc.property(cmds, (list) => {
        const sends = new Map<string, number>();
        const ownQueries = new Map<string, number>();
        const lastSend = new Map<string, number>();
        for (const step of run(list)) {
          for (const key of UNIVERSE)
            if (isOwnQuery(step.cmd, key)) ownQueries.set(keyId(key), (ownQueries.get(keyId(key)) ?? 0) + 1);
          const seenThisStep = new Set<string>();
          for (const e of step.effects) {
            if (e.type !== 'send-assigned-ips') continue;
            const id = keyId(e);
            expect(seenThisStep.has(id)).toBe(false); // at most one send per entry per input
            seenThisStep.add(id);
            sends.set(id, (sends.get(id) ?? 0) + 1);
            const gap = step.now - (lastSend.get(id) ?? Number.NEGATIVE_INFINITY);
            // Faster than the interval only as the first send of an episode, started by its own query.
            if (gap < INTERVAL) {
              expect(isOwnQuery(step.cmd, e)).toBe(true);
              expect(step.before.get(id)).not.toBe('pending');
            }
            lastSend.set(id, step.now);
          }
        }
        for (const [id, n] of sends) expect(n).toBeLessThanOrEqual(MAX_SENDS * (ownQueries.get(id) ?? 0));
      }),
      { numRuns: 300 },
    );
  });

  it('(4) the same status delivered twice has the effect of once', () => {
    fc.assert(
      fc.property(cmds, (list) => {
        const once = run(list);
        const twice = run(list, true);
        expect(twice.map((s) => [s.effects, [...s.after]])).toEqual(
          once.map((s) => [s.effects, [...s.after]]),
        );
        for (const s of twice) expect(s.duplicateEffects).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('(5) no effect ever names an unknown entry', () => {
    fc.assert(
      fc.property(cmds, (list) => {
        for (const step of run(list)) {
          for (const e of step.effects) {
            const id = keyId(effectKey(e));
            expect(step.after.has(id)).toBe(true); // within the universe of keys the commands can name
            const after = step.after.get(id);
            const removedNow =
              after === undefined && step.before.get(id) !== undefined && isClearOf(step.cmd, effectKey(e));
            if (removedNow) {
              expect(['discard', 'gate']).toContain(e.type);
              continue;
            }
            expect(after).toBeDefined();
            if (e.type === 'send-assigned-ips') expect(after).toBe('pending');
            if (e.type === 'flush') expect(after).toBe('confirmed');
            if (e.type === 'discard') expect(after).toBe('failed');
            if (e.type === 'gate' && e.mode === 'buffer') expect(after).toBe('pending');
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
