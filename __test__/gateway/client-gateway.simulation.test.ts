// The client's state machine and the gateway's policy talking over a seeded lossy network with a fake
// clock (DESIGN §8 "simulation test"): hundreds of domains, loss, latency (hence reordering) and duplicates
// both ways, a fake site DNS whose records change, and a model of the runtime's mapping table. Checks that
// the two halves agree on the protocol: every resolvable domain converges to `confirmed` with a correct
// mapping, resolution work stays bounded by dedupe and caching, and a failed domain whose record appears
// is healed from traffic alone through an unsolicited `DomainStatus` the client accepts.

import { describe, expect, it } from 'vitest';
import { DnsResourceNat, type NatKey } from '../../ts/client/dns-resource-nat.js';
import { GatewayPolicy, type ResolutionResult } from '../../ts/gateway/policy.js';
import { DomainPattern } from '../../ts/net/pattern.js';
import { MessageType } from '../../ts/protocol/control.js';
import { Prng } from '../client/support/prng.js';

const ALICE = 'j94dl3TnzOFymO2TF7GeJ2ev7qTp7QXCk5RbRIehKUA=';

interface Scheduled {
  at: number;
  seq: number;
  run: () => void;
}

class Sim {
  now = 0;
  private queue: Scheduled[] = [];
  private order = 0;
  readonly rng: Prng;
  readonly nat = new DnsResourceNat();
  readonly policy: GatewayPolicy;
  /** The runtime's mapping table as the policy left it: proxy IP → real address or null. */
  readonly mappings = new Map<string, string | null>();
  /** domain → its A records now, or undefined for NXDOMAIN. */
  readonly records = new Map<string, string[] | undefined>();
  readonly resolutionsPerDomain = new Map<string, number>();
  readonly proxies = new Map<string, string[]>();
  private nextProxy = 1;
  statusesDelivered = 0;
  assignedSent = 0;

  constructor(
    seed: number,
    public loss: number,
  ) {
    this.rng = new Prng(seed);
    this.policy = new GatewayPolicy({
      resources: [{ id: 'web', pattern: DomainPattern.parse('*.corp.example'), ipStack: 'ipv4' }],
      clients: [{ id: 'alice', publicKey: ALICE, tunnelIps: ['100.64.0.2'], resources: ['web'] }],
    });
  }

  at(delay: number, run: () => void): void {
    this.queue.push({ at: this.now + delay, seq: this.order++, run });
  }

  /** One message over the lossy network: maybe lost, maybe duplicated, 5–80 ms late. */
  send(run: () => void): void {
    if (this.rng.chance(this.loss)) return;
    this.at(this.rng.int(5, 80), run);
    if (this.rng.chance(0.05)) this.at(this.rng.int(5, 120), run);
  }

  proxyIps(domain: string): string[] {
    let p = this.proxies.get(domain);
    if (!p) {
      p = [0, 1, 2, 3].map(() => {
        const n = this.nextProxy++;
        return `100.96.${n >> 8}.${n & 255}`;
      });
      this.proxies.set(domain, p);
    }
    return p;
  }

  key(domain: string): NatKey {
    return { gatewayId: 'gw', domain, resourceId: 'web' };
  }

  query(domain: string): void {
    this.nat.onDnsQuery(
      domain,
      [{ gatewayId: 'gw', resourceId: 'web', proxyIps: this.proxyIps(domain) }],
      this.now,
    );
    this.pump();
  }

  /** An application packet to the domain's first proxy IP. */
  packet(domain: string): void {
    const gate = this.nat.onOutgoingPacket(this.key(domain), this.now);
    this.pump();
    if (gate === 'pass') {
      // It reaches the gateway; a proxy IP without an address asks for resolution (rate-limited per proxy
      // IP in the runtime, modelled here by sending it at most once a second).
      const proxy = this.proxyIps(domain)[0] as string;
      this.send(() => {
        if (this.mappings.get(proxy) === null) {
          this.policy.onResolveUnmapped(ALICE, proxy, this.now);
          this.pump();
        }
      });
    }
  }

  private pump(): void {
    for (let e = this.nat.pollEffect(); e; e = this.nat.pollEffect()) {
      if (e.type !== 'send-assigned-ips') continue;
      this.assignedSent++;
      const body = JSON.stringify({
        resource: e.resourceId,
        domain: e.domain,
        proxy_ips: e.proxyIps,
        seq: e.seq,
      });
      this.send(() => {
        this.policy.onControl(ALICE, MessageType.AssignedIps, body, this.now);
        this.pump();
      });
    }
    for (let c = this.policy.pollCommand(); c; c = this.policy.pollCommand()) {
      switch (c.type) {
        case 'set-mapping':
          this.mappings.set(c.proxyIp, c.realIp ?? null);
          break;
        case 'remove-mapping':
          this.mappings.delete(c.proxyIp);
          break;
        case 'send-status': {
          const b = c.body;
          this.send(() => {
            this.statusesDelivered++;
            this.nat.onDomainStatus(
              'gw',
              { domain: b.domain, resourceId: b.resource, status: b.status, seq: b.seq, reason: b.reason },
              this.now,
            );
            this.pump();
          });
          break;
        }
        case 'resolve': {
          const { id, domain } = c;
          this.resolutionsPerDomain.set(domain, (this.resolutionsPerDomain.get(domain) ?? 0) + 1);
          this.at(this.rng.int(1, 200), () => {
            const a = this.records.get(domain);
            const r: ResolutionResult = a
              ? { outcome: 'ok', ipv4: a, ipv6: [], ttlSeconds: 300 }
              : { outcome: 'nxdomain', ipv4: [], ipv6: [], ttlSeconds: 300 };
            this.policy.onResolution(id, r, this.now);
            this.pump();
          });
          break;
        }
        default:
          break;
      }
    }
  }

  /** Runs events and both machines' timers up to `until`. */
  run(until: number): void {
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = Math.min(
        this.queue[0]?.at ?? Number.POSITIVE_INFINITY,
        this.nat.pollTimeout() ?? Number.POSITIVE_INFINITY,
        this.policy.pollTimeout() ?? Number.POSITIVE_INFINITY,
      );
      if (next > until) break;
      this.now = Math.max(this.now, next);
      const t = this.nat.pollTimeout();
      if (t !== undefined && t <= this.now) this.nat.handleTimeout(this.now);
      const p = this.policy.pollTimeout();
      if (p !== undefined && p <= this.now) this.policy.handleTimeout(this.now);
      while (this.queue[0] && this.queue[0].at <= this.now) (this.queue.shift() as Scheduled).run();
      this.pump();
    }
    this.now = until;
  }
}

describe('client state machine × gateway policy over a lossy network', () => {
  for (const [seed, loss] of [
    [1, 0],
    [2, 0.2],
    [3, 0.4],
  ] as const) {
    it(`300 domains converge, seed ${seed}, ${loss * 100}% loss each way`, () => {
      const sim = new Sim(seed, loss);
      const domains = Array.from({ length: 300 }, (_, i) => `host${i}.corp.example`);
      const broken = new Set(domains.filter((_, i) => i % 10 === 0));
      for (const [i, d] of domains.entries()) {
        sim.records.set(
          d,
          broken.has(d) ? undefined : [`10.1.${i % 7}.${i % 200}`, `10.1.${i % 7}.${(i % 200) + 1}`],
        );
      }
      // Applications look every name up and keep sending to it (a packet every ~3 s, which is what resends
      // for a pending entry whose traffic already passes), and look it up again every ~10 s (the stub answers
      // with TTL 1 s), which is what restarts an entry that gave up while every message was lost.
      for (const d of domains) {
        const first = sim.rng.int(0, 2_000);
        for (let round = 0; round < 5; round++) {
          sim.at(first + round * 10_000 + sim.rng.int(0, 500), () => sim.query(d));
        }
        for (let t = first; t < 75_000; t += 3_000) sim.at(t + 1, () => sim.packet(d));
      }
      // Under loss an entry can give up (six exchanges lost in a row: `failed`, reason timeout) or wait in
      // `pending` with its traffic passing; both recover on the next lookup of the name. So the network
      // recovers at 75 s and every name is looked up once more: everything must converge.
      sim.at(75_000, () => {
        sim.loss = 0;
      });
      for (const d of domains) sim.at(76_000 + sim.rng.int(0, 1_000), () => sim.query(d));
      sim.run(90_000);

      for (const d of domains) {
        const state = sim.nat.state(sim.key(d));
        if (broken.has(d)) {
          expect(state, d).toBe('failed');
          expect(sim.mappings.get(sim.proxyIps(d)[0] as string), d).toBe(null);
          continue;
        }
        expect(state, d).toBe('confirmed');
        // proxy k → sorted real k mod n
        const real = [...(sim.records.get(d) ?? [])].sort((a, b) => {
          const n = (s: string) => s.split('.').reduce((x, o) => x * 256 + Number(o), 0);
          return n(a) - n(b);
        });
        sim.proxyIps(d).forEach((p, k) => {
          expect(sim.mappings.get(p), `${d} ${p}`).toBe(real[k % real.length]);
        });
      }
      // Dedupe and caching: one resolution per resolvable domain however many resends and duplicates
      // arrived; broken names only as often as the negative cache (30 s) and the client's episodes allow.
      // Broken names are also retried by their own traffic, within the 1 s → 30 s backoff.
      const phase1 = new Map(sim.resolutionsPerDomain);
      for (const d of domains) {
        const n = phase1.get(d) ?? 0;
        if (broken.has(d)) expect(n, d).toBeLessThanOrEqual(12);
        else expect(n, d).toBe(1);
      }
      expect(sim.policy.counters.resolutionsRefused).toBe(0);

      // The records of the broken names appear, loss is back; traffic alone heals the mappings.
      sim.loss = loss;
      for (const d of broken) sim.records.set(d, ['10.9.9.9']);
      for (let t = 0; t < 40; t++) {
        sim.at(t * 1_000, () => {
          for (const d of broken) sim.packet(d);
        });
      }
      sim.run(140_000);
      for (const d of broken) expect(sim.mappings.get(sim.proxyIps(d)[0] as string), d).toBe('10.9.9.9');
      // Without loss the unsolicited active reaches every client entry; with loss one may be lost, and the
      // entry then recovers on the next lookup of its name (its traffic already flows meanwhile).
      if (loss === 0) for (const d of broken) expect(sim.nat.state(sim.key(d)), d).toBe('confirmed');
      else
        expect([...broken].filter((d) => sim.nat.state(sim.key(d)) === 'confirmed').length).toBeGreaterThan(
          0,
        );
      sim.loss = 0;
      for (const d of broken) sim.at(sim.rng.int(0, 1_000), () => sim.query(d));
      sim.run(170_000);
      for (const d of broken) expect(sim.nat.state(sim.key(d)), d).toBe('confirmed');
      // Self-healing stays within its backoff: a handful of resolutions per domain, not one per packet.
      for (const d of broken) {
        expect((sim.resolutionsPerDomain.get(d) ?? 0) - (phase1.get(d) ?? 0), d).toBeLessThanOrEqual(3);
      }
    });
  }
});
