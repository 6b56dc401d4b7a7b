// The state machine plus a small gateway model over a seeded lossy network with a fake clock: 500 domains,
// of which some never resolve, applications that keep trying, background DNS noise from the rest of the
// system, and loss from 0 to 50 % in each direction. Deterministic: the same seed replays the same run.
import { beforeAll, describe, expect, it } from 'vitest';
import type { DnsQueryMatch } from '../../ts/client/dns-resource-nat.js';
import { LossyWorld, startApp } from './support/lossy-world.js';

const DOMAINS = 500;
const UNRESOLVABLE_EVERY = 10; // every 10th domain never resolves: 50 of them
const MAX_SENDS = 6;
const NOISE_UNTIL_MS = 20 * 60_000;
const HORIZON_MS = 3 * 3_600_000;

interface Outcome {
  world: LossyWorld;
  resolvable: string[];
  unresolvable: string[];
  apps: Map<string, { done: () => boolean; attempts: () => number }>;
  match: (domain: string) => DnsQueryMatch;
}

function simulate(seed: number, loss: number): Outcome {
  const domains = [...Array(DOMAINS).keys()].map((i) => `svc-${i}.corp.example`);
  const unresolvable = domains.filter((_, i) => i % UNRESOLVABLE_EVERY === 3);
  const world = new LossyWorld({
    seed,
    lossToGateway: loss,
    lossToClient: loss,
    latencyMs: { min: 5, max: 80 },
    duplicateRate: 0.05,
    resolveMs: { min: 1, max: 300 },
    unresolvable: new Set(unresolvable),
    nat: { maxUnansweredSends: MAX_SENDS },
  });
  // Two gateways and three resources, so keys differ in every component.
  const match = (domain: string): DnsQueryMatch => {
    const i = Number(domain.slice(4, domain.indexOf('.')));
    return {
      gatewayId: i % 2 === 0 ? 'gw-a' : 'gw-b',
      resourceId: `res-${i % 3}`,
      proxyIps: [`100.96.${i >> 8}.${i & 255}`],
    };
  };
  const apps = new Map<string, { done: () => boolean; attempts: () => number }>();
  for (const domain of domains) {
    const never = unresolvable.includes(domain);
    apps.set(
      domain,
      startApp(world, domain, match(domain), {
        startAt: world.rng.int(0, 60_000),
        attemptEveryMs: 20_000,
        maxAttempts: never ? 3 : Number.POSITIVE_INFINITY,
      }),
    );
  }
  // The rest of the system keeps resolving ordinary names; each of these queries runs the resend check.
  const noise = () => {
    world.query(`www.example${world.rng.int(0, 50)}.com`, []);
    if (world.now < NOISE_UNTIL_MS) world.at(world.now + world.rng.int(50, 600), noise);
  };
  world.at(0, noise);
  world.run(HORIZON_MS);
  return { world, resolvable: domains.filter((d) => !unresolvable.includes(d)), unresolvable, apps, match };
}

function stateOf(o: Outcome, domain: string) {
  const m = o.match(domain);
  return o.world.nat.state({ gatewayId: m.gatewayId, domain, resourceId: m.resourceId });
}

function sendsOf(o: Outcome, domains: string[]): number[] {
  return domains.map((d) => {
    const m = o.match(d);
    return o.world.record({ gatewayId: m.gatewayId, domain: d, resourceId: m.resourceId }).sends;
  });
}

describe.each([0, 0.1, 0.25, 0.5])('simulation: 500 domains, %d loss each way', (loss) => {
  const seed = 1_000 + Math.round(loss * 100);
  let o: Outcome;
  beforeAll(() => {
    o = simulate(seed, loss);
  });

  it('breaks no invariant (sends only when pending and due, settled entries quiet, gates consistent)', () => {
    expect(o.world.violations.slice(0, 10)).toEqual([]);
  });

  it('every domain applications keep asking for ends confirmed, and its packets were flushed', () => {
    const notConfirmed = o.resolvable.filter((d) => stateOf(o, d) !== 'confirmed');
    expect(notConfirmed).toEqual([]);
    for (const d of o.resolvable) expect(o.apps.get(d)?.done()).toBe(true);
    expect(o.world.stats.packetsFlushed).toBeGreaterThan(0);
  });

  it('every domain that never resolves ends failed', () => {
    expect(o.unresolvable.filter((d) => stateOf(o, d) !== 'failed')).toEqual([]);
  });

  it('the world falls quiet: no timer, nothing in flight, no pending entry', () => {
    expect(o.world.idle).toBe(true);
    expect(o.world.nat.entries().filter((e) => e.state === 'pending')).toEqual([]);
  });

  it('messages per entry stay within maxUnansweredSends per query of its own domain', () => {
    for (const rec of o.world.keys.values()) {
      expect(rec.sends).toBeLessThanOrEqual(MAX_SENDS * rec.ownQueries);
    }
  });

  it('a domain that never resolves costs at most one exchange per attempt when nothing is lost', () => {
    const sends = sendsOf(o, o.unresolvable);
    for (const s of sends) expect(s).toBeLessThanOrEqual(3 * MAX_SENDS);
    if (loss === 0) expect(sends.every((s) => s === 3)).toBe(true);
  });

  it('resolvable domains cost few messages: one each without loss, about 1/(1-loss)² on average', () => {
    const sends = sendsOf(o, o.resolvable);
    const mean = sends.reduce((a, b) => a + b, 0) / sends.length;
    if (loss === 0) expect(sends.every((s) => s === 1)).toBe(true);
    const expected = 1 / ((1 - loss) * (1 - loss));
    expect(mean).toBeLessThanOrEqual(2 * expected + 0.5);
  });
});

describe('simulation determinism', () => {
  it('the same seed replays the same run, effect for effect; another seed does not', () => {
    const a = simulate(77, 0.3).world;
    const b = simulate(77, 0.3).world;
    const c = simulate(78, 0.3).world;
    expect(a.digestHex()).toBe(b.digestHex());
    expect(a.stats).toEqual(b.stats);
    expect(c.digestHex()).not.toBe(a.digestHex());
  });
});
