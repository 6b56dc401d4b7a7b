// A deterministic little world around one DnsResourceNat: a fake clock, a seeded lossy network in both
// directions (loss, random latency, hence reordering, and duplicates), gateways that resolve in the background
// and answer `DomainStatus` with the seq they received, and a model of the packet path (gates and buffers).
//
// The world checks, on every effect the machine emits, the invariants that must hold whatever the network
// does, and records any breach in `violations` rather than throwing, so a test can report all of them:
// - a `send-assigned-ips` names a tracked entry that is `pending` (no effect names an unknown entry);
// - two sends of one entry are at least one resend interval apart, unless the second is the first send of a
//   new episode, started by a query for the entry's own domain;
// - an entry that the world has seen settle (confirmed or failed) sends nothing until a query for its own
//   domain names it again;
// - `flush` only for a confirmed entry, `discard` only for a failed or removed one, and after every batch a
//   gate that is `pass` holds no buffered packet;
// - what `onOutgoingPacket` returns agrees with the gate the effects have set.
import { createHash, type Hash } from 'node:crypto';
import {
  type DnsQueryMatch,
  DnsResourceNat,
  type DnsResourceNatOptions,
  type Effect,
  type NatKey,
  normalizeDomain,
} from '../../../ts/client/dns-resource-nat.js';
import { DeadlineQueue, DeadlineSlot } from '../../../ts/common/deadline-queue.js';
import { Prng } from './prng.js';

export interface WorldConfig {
  seed: number;
  /** Probability that one AssignedIps is lost on its way to the gateway. */
  lossToGateway: number;
  /** Probability that one DomainStatus is lost on its way back. */
  lossToClient: number;
  latencyMs?: { min: number; max: number };
  /** Probability that a delivered message is delivered a second time (after its own random latency). */
  duplicateRate?: number;
  /** Time the gateway takes to resolve a domain. */
  resolveMs?: { min: number; max: number };
  /** Domains the gateways can never resolve (they answer `inactive`). */
  unresolvable?: ReadonlySet<string>;
  nat?: DnsResourceNatOptions;
}

export interface KeyRecord {
  key: NatKey;
  sends: number;
  /** Queries for this key's domain that listed this (gateway, resource). */
  ownQueries: number;
  lastSendAt: number;
  /** Settled as far as the world can tell: no send allowed until an own query. */
  quiet: boolean;
  firstConfirmedAt: number | undefined;
}

const BUFFER_CAPACITY = 32;

export function keyId(key: NatKey): string {
  return `${key.gatewayId}|${normalizeDomain(key.domain)}|${key.resourceId}`;
}

export class LossyWorld {
  readonly nat: DnsResourceNat;
  readonly rng: Prng;
  now = 0;
  readonly violations: string[] = [];
  readonly keys = new Map<string, KeyRecord>();
  readonly stats = {
    inputs: 0,
    messagesToGateway: 0,
    deliveredToGateway: 0,
    statusesSent: 0,
    statusesDelivered: 0,
    packetsBuffered: 0,
    packetsFlushed: 0,
    packetsDiscarded: 0,
    packetsOverflowed: 0,
  };
  private readonly events = new DeadlineQueue<() => void>();
  private readonly gates = new Map<string, { mode: 'buffer' | 'pass'; buffered: number }>();
  private readonly digest: Hash = createHash('sha256');
  private readonly resendIntervalMs: number;
  private readonly config: Required<Omit<WorldConfig, 'nat'>>;

  constructor(config: WorldConfig) {
    this.nat = new DnsResourceNat(config.nat);
    this.resendIntervalMs = config.nat?.resendIntervalMs ?? 2_000;
    this.rng = new Prng(config.seed);
    this.config = {
      seed: config.seed,
      lossToGateway: config.lossToGateway,
      lossToClient: config.lossToClient,
      latencyMs: config.latencyMs ?? { min: 5, max: 60 },
      duplicateRate: config.duplicateRate ?? 0,
      resolveMs: config.resolveMs ?? { min: 1, max: 50 },
      unresolvable: config.unresolvable ?? new Set(),
    };
  }

  /** Runs `fn` at time `at` (never in the past). */
  at(at: number, fn: () => void): void {
    this.events.schedule(new DeadlineSlot(fn), Math.max(at, this.now));
  }

  record(key: NatKey): KeyRecord {
    const id = keyId(key);
    let rec = this.keys.get(id);
    if (rec === undefined) {
      rec = {
        key: { ...key, domain: normalizeDomain(key.domain) },
        sends: 0,
        ownQueries: 0,
        lastSendAt: Number.NEGATIVE_INFINITY,
        quiet: false,
        firstConfirmedAt: undefined,
      };
      this.keys.set(id, rec);
    }
    return rec;
  }

  // --- inputs ------------------------------------------------------------------------------------------------

  query(domain: string, matches: DnsQueryMatch[]): void {
    const newEpisode = new Set<string>();
    for (const m of matches) {
      const key = { gatewayId: m.gatewayId, domain, resourceId: m.resourceId };
      const rec = this.record(key);
      rec.ownQueries++;
      rec.quiet = false;
      if (this.nat.state(key) !== 'pending') newEpisode.add(keyId(key));
    }
    this.nat.onDnsQuery(domain, matches, this.now);
    this.afterInput(`query ${domain}`, newEpisode);
  }

  /** An application packet for `key` reaches the packet path. */
  packet(key: NatKey): 'buffer' | 'pass' {
    const gate = this.gateOf(key);
    if (gate.mode === 'buffer') {
      this.stats.packetsBuffered++;
      if (gate.buffered === BUFFER_CAPACITY) this.stats.packetsOverflowed++;
      else gate.buffered++;
    }
    const verdict = this.nat.onOutgoingPacket(key, this.now);
    this.afterInput(`packet ${keyId(key)}`, new Set());
    const after = this.gateOf(key).mode;
    if (verdict !== after)
      this.violations.push(`${this.now}: onOutgoingPacket said ${verdict}, gate is ${after}`);
    return verdict;
  }

  // --- the clock ---------------------------------------------------------------------------------------------

  /** Processes events and machine timers in time order up to `until`. */
  run(until: number): void {
    for (;;) {
      const nextEvent = this.events.earliest() ?? Number.POSITIVE_INFINITY;
      const nextTimer = this.nat.pollTimeout() ?? Number.POSITIVE_INFINITY;
      const next = Math.min(nextEvent, nextTimer);
      if (next > until || next === Number.POSITIVE_INFINITY) break;
      this.now = Math.max(this.now, next);
      if (nextTimer <= nextEvent) {
        this.nat.handleTimeout(this.now);
        this.afterInput('timer', new Set());
      } else {
        this.events.popDue(this.now)?.();
      }
    }
    if (until !== Number.POSITIVE_INFINITY) this.now = Math.max(this.now, until);
  }

  get idle(): boolean {
    return this.events.size === 0 && this.nat.pollTimeout() === undefined;
  }

  digestHex(): string {
    return this.digest.copy().digest('hex');
  }

  gateOf(key: NatKey): { mode: 'buffer' | 'pass'; buffered: number } {
    const id = keyId(key);
    let gate = this.gates.get(id);
    if (gate === undefined) {
      gate = { mode: 'pass', buffered: 0 };
      this.gates.set(id, gate);
    }
    return gate;
  }

  // --- effects -----------------------------------------------------------------------------------------------

  private afterInput(what: string, newEpisode: Set<string>): void {
    this.stats.inputs++;
    const touched: string[] = [];
    for (let effect = this.nat.pollEffect(); effect !== undefined; effect = this.nat.pollEffect()) {
      this.digest.update(`${this.now} ${JSON.stringify(effect)}\n`);
      const key: NatKey = effect.type === 'send-assigned-ips' ? effect : effect.key;
      const id = keyId(key);
      touched.push(id);
      const state = this.nat.state(key);
      if (state === undefined && what !== 'clear') {
        this.violations.push(`${this.now} ${what}: ${effect.type} names unknown entry ${id}`);
      }
      this.apply(effect, id, state, what, newEpisode);
    }
    for (const id of touched) {
      const gate = this.gates.get(id);
      if (gate?.mode === 'pass' && gate.buffered > 0) {
        this.violations.push(`${this.now} ${what}: gate of ${id} is pass with ${gate.buffered} held packets`);
      }
    }
  }

  private apply(
    effect: Effect,
    id: string,
    state: string | undefined,
    what: string,
    newEpisode: Set<string>,
  ) {
    switch (effect.type) {
      case 'send-assigned-ips': {
        const rec = this.record(effect);
        if (state !== 'pending')
          this.violations.push(`${this.now} ${what}: send for ${id} in state ${state}`);
        if (rec.quiet) this.violations.push(`${this.now} ${what}: settled ${id} sent without its own query`);
        if (this.now - rec.lastSendAt < this.resendIntervalMs && !newEpisode.has(id)) {
          this.violations.push(
            `${this.now} ${what}: ${id} resent ${this.now - rec.lastSendAt} ms after the last send`,
          );
        }
        newEpisode.delete(id); // one fast send per episode
        rec.sends++;
        rec.lastSendAt = this.now;
        this.stats.messagesToGateway++;
        this.toGateway(effect);
        break;
      }
      case 'gate':
        this.gateOf(effect.key).mode = effect.mode;
        break;
      case 'flush': {
        if (state !== 'confirmed')
          this.violations.push(`${this.now} ${what}: flush for ${id} in state ${state}`);
        const gate = this.gateOf(effect.key);
        this.stats.packetsFlushed += gate.buffered;
        gate.buffered = 0;
        break;
      }
      case 'discard': {
        if (state !== 'failed' && state !== undefined) {
          this.violations.push(`${this.now} ${what}: discard for ${id} in state ${state}`);
        }
        const gate = this.gateOf(effect.key);
        this.stats.packetsDiscarded += gate.buffered;
        gate.buffered = 0;
        this.record(effect.key).quiet = true;
        break;
      }
    }
  }

  // --- network and gateways ----------------------------------------------------------------------------------

  private deliver(loss: number, fn: () => void): boolean {
    if (this.rng.chance(loss)) return false;
    const { min, max } = this.config.latencyMs;
    this.at(this.now + this.rng.int(min, max), fn);
    if (this.rng.chance(this.config.duplicateRate)) this.at(this.now + this.rng.int(min, max), fn);
    return true;
  }

  private toGateway(msg: Extract<Effect, { type: 'send-assigned-ips' }>): void {
    const { gatewayId, domain, resourceId, seq } = msg;
    this.deliver(this.config.lossToGateway, () => {
      this.stats.deliveredToGateway++;
      // The gateway accepts at once and resolves in the background; the answer echoes the seq it answers.
      const { min, max } = this.config.resolveMs;
      this.at(this.now + this.rng.int(min, max), () => {
        const status = this.config.unresolvable.has(domain) ? 'inactive' : 'active';
        this.stats.statusesSent++;
        this.deliver(this.config.lossToClient, () => {
          this.stats.statusesDelivered++;
          const key = { gatewayId, domain, resourceId };
          this.nat.onDomainStatus(gatewayId, { domain, resourceId, status, seq }, this.now);
          this.afterInput(`status ${status} ${keyId(key)}#${seq}`, new Set());
          const state = this.nat.state(key);
          const rec = this.record(key);
          if (state === 'confirmed' || state === 'failed') rec.quiet = true;
          if (state === 'confirmed' && rec.firstConfirmedAt === undefined) rec.firstConfirmedAt = this.now;
        });
      });
    });
  }
}

/**
 * An application that wants `domain`: each attempt queries DNS and sends a SYN with Linux-like retransmits
 * (1, 3, 7, 15, 31 s), until it sees its entry confirmed; a new attempt every `attemptEveryMs`, at most
 * `maxAttempts` (then it gives up, as clients do with a name that never works).
 */
export function startApp(
  world: LossyWorld,
  domain: string,
  match: DnsQueryMatch,
  options: { startAt: number; attemptEveryMs: number; maxAttempts: number },
): { done: () => boolean; attempts: () => number } {
  const key: NatKey = { gatewayId: match.gatewayId, domain, resourceId: match.resourceId };
  let attempts = 0;
  let done = false;
  const connected = () => world.nat.state(key) === 'confirmed';
  const attempt = () => {
    if (done) return;
    if (connected()) {
      done = true;
      return;
    }
    if (attempts >= options.maxAttempts) return;
    attempts++;
    world.query(domain, [match]);
    world.packet(key);
    for (const offset of [1_000, 3_000, 7_000, 15_000, 31_000]) {
      if (offset >= options.attemptEveryMs) break;
      world.at(world.now + offset, () => {
        if (!done && !connected()) world.packet(key);
      });
    }
    world.at(world.now + options.attemptEveryMs, attempt);
  };
  world.at(options.startAt, attempt);
  return { done: () => done || connected(), attempts: () => attempts };
}
