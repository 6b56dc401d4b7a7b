// The gateway's decisions (docs/architecture.md#the-gateways-policy): who may use what, which proxy IP maps to which real address, when
// to resolve, and what to tell the client. Sans-IO like the client's state machine: the caller hands in
// events and `now`, drains commands with `pollCommand()`, arms one timer from `pollTimeout()` and reports
// resolutions back with `onResolution()`. Nothing here reads a clock, resolves a name or touches the tunnel,
// so every rule below is tested with a fake runtime and a fake clock.
//
// The rules, and why they are shaped this way:
// - Validation comes first and is complete (known client, resource exists and is allowed, the domain matches
//   the resource's pattern, 4 or 8 distinct proxy IPs inside the proxy ranges and of the resource's stack).
//   A rejection answers `inactive` with a reason and installs nothing. The reference design installed any
//   address a client named, which let an authorised client open arbitrary IPs under a resource's filter.
// - Always accept, resolve in the background: a valid `AssignedIps` registers its proxy IPs at once (a
//   mapping without a real address, so traffic gets ICMP unreachable rather than nothing) and nothing waits
//   on DNS. The answer is sent when the resolution ends.
// - State per domain is shared by every client: one resolution in flight per domain (later callers join
//   it), answers cached for their TTL, negative answers for their TTL capped at `maxNegativeCacheMs`, a
//   deadline per resolution, at most `maxInFlight` at once and a bounded FIFO of domains waiting for a slot;
//   beyond that a resolution is refused and counted. Memory is bounded by what clients have registered.
// - Mapping: proxy k of a family (ascending) → sorted real address k mod n of the same family. A family
//   without addresses leaves its proxy IPs registered without one. `active` iff at least one proxy IP of the
//   (domain, resource) has a real address.
// - NXDOMAIN and empty answers are authoritative: real addresses are withdrawn. A timeout or an error is
//   not: a mapping that worked keeps serving (stale beats a cut-off), and nothing changes.
// - Statuses: every `AssignedIps` gets one answer (the latest seq wins if several wait on one resolution),
//   and a (domain, resource) whose status changes on its own (healed, record gone) gets an unsolicited one
//   echoing the last seq the client sent, which the client accepts (docs/decisions.md).
// - Self-healing: traffic to a proxy IP without an address (`resolve-unmapped`, already rate-limited per
//   proxy IP by the runtime) starts a resolution that ignores the negative cache, at most once per domain
//   per backoff step (1 s doubling to 30 s; the step resets when the domain starts resolving again).
//   A mapping used past its TTL (`mapping-expired`) is re-resolved in the background; the runtime keeps
//   live sessions on their old address, so the new one serves new sessions only.
// - A client that names a proxy IP we hold for another domain has given that address to a new name (it
//   released an idle name, or lost its state file): the bindings holding those proxy IPs are dropped before
//   the new one is installed, so a proxy IP never maps to two domains and stale state can never route
//   traffic to the wrong service. Only those bindings: the cost is what changed, not the client's table.
// - Config changes apply at once: a removed client loses its peer, a removed or no longer allowed resource
//   loses its mappings and sessions, changed ports are re-installed.
// - One client must not cost the others (docs/security.md): it holds at most `maxBindingsPerClient`
//   bindings (a new one past that takes the place of the least recently used: never a lockout) and starts at most `maxPendingResolutionsPerClient` resolutions at once (joining one in flight is
//   free); a binding none of whose proxy IPs carried a NAT session for `bindingIdleMs` is dropped (a deadline
//   per binding, so the check costs the bindings that are due, never a scan); real addresses the destination
//   filter refuses (loopback, link-local, metadata, the gateway's own) are never mapped.
import { DeadlineQueue, DeadlineSlot } from '../common/deadline-queue.js';
import { type Ip, parseIp } from '../net/ip.js';
import {
  ControlMessageError,
  type DomainStatus,
  MessageType,
  parseReceivedAssignedIps,
  type ReceivedAssignedIps,
} from '../protocol/control.js';
import type { GatewayClient, ResourceConfig } from './config.js';
import { DestinationFilter } from './destination-filter.js';
import { Histogram } from './metrics.js';
import { answerCovers, checkProxyIps, sameIps, sortedIps } from './policy/proxy-ips.js';
import { ResolverSlots } from './policy/resolver-slots.js';
import {
  type Answer,
  type Binding,
  type BindingRef,
  type BindingSnapshot,
  bindingKey,
  bump,
  type ClientBindings,
  type Command,
  type DomainState,
  emptyCounters,
  type Installed,
  type LogLevel,
  normalizeDomain,
  type PolicyConfig,
  type PolicyCounters,
  type PolicyOptions,
  type ProxyEntry,
  type RejectReason,
  type ResolutionResult,
  stackAllows,
} from './policy/types.js';

export { checkProxyIps } from './policy/proxy-ips.js';
export type {
  BindingSnapshot,
  Command,
  DomainStatusValue,
  LogLevel,
  PolicyConfig,
  PolicyCounters,
  PolicyOptions,
  RejectReason,
  ResolutionResult,
} from './policy/types.js';
export { normalizeDomain } from './policy/types.js';

/** Bindings looked at to choose one to evict: enough to step over a few still carrying traffic. */
const EVICTION_CANDIDATES = 8;

export class GatewayPolicy {
  readonly counters: PolicyCounters = emptyCounters();
  /** Resolution latency in seconds, as the policy saw it (command to answer). */
  readonly latency = new Histogram();

  private readonly opts: Required<PolicyOptions>;
  private resources = new Map<string, ResourceConfig>();
  private readonly clients = new Map<string, ClientBindings>();
  private readonly byKey = new Map<string, string>();
  private readonly domains = new Map<string, DomainState>();
  private readonly slots: ResolverSlots;
  /** Bindings by the time they may have gone idle. */
  private readonly expiries = new DeadlineQueue<BindingRef>();
  private readonly commands: Command[] = [];
  private commandHead = 0;

  constructor(config: PolicyConfig, options: PolicyOptions = {}, now = 0) {
    this.opts = {
      resolveTimeoutMs: options.resolveTimeoutMs ?? 10_000,
      maxInFlight: options.maxInFlight ?? 1_000,
      maxQueued: options.maxQueued ?? 10_000,
      healInitialMs: options.healInitialMs ?? 1_000,
      healMaxMs: options.healMaxMs ?? 30_000,
      maxNegativeCacheMs: options.maxNegativeCacheMs ?? 30_000,
      maxBindingsPerClient: options.maxBindingsPerClient ?? 10_000,
      maxPendingResolutionsPerClient: options.maxPendingResolutionsPerClient ?? 100,
      bindingIdleMs: options.bindingIdleMs ?? 3_600_000,
      mappingIdleMs: options.mappingIdleMs ?? (() => undefined),
      destinations: options.destinations ?? new DestinationFilter(),
    };
    this.slots = new ResolverSlots(this.opts.maxInFlight, this.opts.maxQueued, this.opts.resolveTimeoutMs);
    this.setConfig(config, now);
  }

  // ---- outputs ----

  pollCommand(): Command | undefined {
    if (this.commandHead >= this.commands.length) {
      if (this.commands.length > 0) {
        this.commands.length = 0;
        this.commandHead = 0;
      }
      return undefined;
    }
    const c = this.commands[this.commandHead];
    this.commands[this.commandHead++] = undefined as unknown as Command;
    return c;
  }

  /** The earliest resolution deadline or binding expiry check, if any. */
  pollTimeout(): number | undefined {
    const expiry = this.expiries.earliest();
    const deadline = this.slots.earliestDeadline((d) => this.domains.get(d));
    if (deadline === undefined) return expiry;
    return expiry === undefined ? deadline : Math.min(deadline, expiry);
  }

  handleTimeout(now: number): void {
    this.expireIdleBindings(now);
    for (const ds of this.slots.overdue(now, (d) => this.domains.get(d))) {
      this.counters.resolutionDeadlines++;
      this.finishResolution(
        ds,
        { outcome: 'timeout', ipv4: [], ipv6: [], ttlSeconds: 0, error: 'deadline exceeded' },
        now,
      );
    }
    this.pump(now);
  }

  /** The configured id of the client with this key. */
  clientIdOf(publicKey: string): string | undefined {
    return this.byKey.get(publicKey);
  }

  inFlight(): number {
    return this.slots.inFlight;
  }

  queued(): number {
    return this.slots.waiting;
  }

  /** Bindings a client holds now. */
  bindingCount(clientId: string): number {
    return this.clients.get(clientId)?.bindings.size ?? 0;
  }

  /** Registered proxy IPs over all clients. */
  mappingCount(): number {
    let n = 0;
    for (const c of this.clients.values()) n += c.proxies.size;
    return n;
  }

  snapshot(): BindingSnapshot[] {
    const out: BindingSnapshot[] = [];
    for (const c of this.clients.values()) {
      for (const b of c.bindings.values()) {
        out.push({
          client: c.cfg.id,
          domain: b.domain,
          resource: b.resourceId,
          status: b.lastStatus,
          awaiting: b.awaiting,
          seq: b.seq,
          mappings: b.proxies.map((p) => {
            const real = c.proxies.get(p.text)?.real;
            return real === undefined ? { proxyIp: p.text } : { proxyIp: p.text, realIp: real };
          }),
        });
      }
    }
    return out;
  }

  // ---- inputs ----

  /** A control message from a peer (docs/architecture.md#control-protocol). */
  onControl(publicKey: string, messageType: number, body: string, now: number): void {
    const clientId = this.byKey.get(publicKey);
    const client = clientId === undefined ? undefined : this.clients.get(clientId);
    if (messageType === MessageType.Goodbye) {
      this.counters.goodbyes++;
      if (client) {
        this.log('info', 'client said goodbye; dropping its mappings', { client: client.cfg.id });
        this.resetClient(client, now);
      }
      return;
    }
    if (messageType !== MessageType.AssignedIps) {
      this.counters.controlIgnored++;
      this.log('debug', 'control message ignored', { client: client?.cfg.id, messageType });
      return;
    }
    let msg: ReceivedAssignedIps;
    try {
      msg = parseReceivedAssignedIps(body);
    } catch (e) {
      if (!(e instanceof ControlMessageError)) throw e;
      this.counters.controlMalformed++;
      this.log('warn', 'malformed AssignedIps dropped', {
        client: client?.cfg.id ?? publicKey,
        error: e.message,
        body: body.slice(0, 200),
      });
      return;
    }
    this.onAssignedIps(publicKey, client, msg, now);
  }

  /** Traffic reached a registered proxy IP that has no real address. */
  onResolveUnmapped(publicKey: string, proxyIp: string, now: number): void {
    const found = this.lookupProxy(publicKey, proxyIp);
    if (!found) return;
    const [client, entry] = found;
    const ds = this.domainState(entry.domain);
    if (ds.answer && ds.answer.expiresAt > now && answerCovers(ds.answer, entry.ip.family)) {
      // Another client's resolution already knows an address: no need to ask again.
      this.counters.cacheHits++;
      this.applyToClientDomain(client, ds, now, 'healed from cache');
      return;
    }
    if (ds.inflight) {
      this.counters.resolutionsJoined++;
      return;
    }
    if (now < ds.healNextAt) {
      this.counters.healSuppressed++;
      return;
    }
    // Traffic heals at the client's expense too: otherwise unmapped traffic would be a way around its share.
    if (this.overShare(client, ds)) return;
    ds.healNextAt = now + ds.healStepMs;
    ds.healStepMs = Math.min(ds.healStepMs * 2, this.opts.healMaxMs);
    this.counters.healResolutions++;
    this.log('info', 'traffic to a proxy IP without an address; resolving again', {
      client: client.cfg.id,
      domain: entry.domain,
      proxyIp: entry.ip.text,
      nextHealInMs: ds.healNextAt - now,
    });
    this.startResolution(ds, now, client);
  }

  /** A new session used a mapping past its DNS TTL. */
  onMappingExpired(publicKey: string, proxyIp: string, now: number): void {
    const found = this.lookupProxy(publicKey, proxyIp);
    if (!found) return;
    const [client, entry] = found;
    const ds = this.domainState(entry.domain);
    if (this.slots.pending(ds)) {
      this.counters.resolutionsJoined++;
      return;
    }
    if (ds.answer && ds.answer.expiresAt > now) {
      this.counters.cacheHits++;
      this.applyToClientDomain(client, ds, now, 'refreshed from cache');
      return;
    }
    if (this.overShare(client, ds)) return; // the next new session past the TTL asks again
    this.counters.refreshResolutions++;
    this.log('debug', 'mapping past its TTL; re-resolving in the background', {
      client: client.cfg.id,
      domain: entry.domain,
    });
    this.startResolution(ds, now, client);
  }

  /** The answer to a `resolve` command. */
  onResolution(id: number, result: ResolutionResult, now: number): void {
    const domain = this.slots.domainOf(id);
    const ds = domain === undefined ? undefined : this.domains.get(domain);
    if (!ds?.inflight || ds.inflight.id !== id) {
      this.counters.lateAnswers++;
      this.slots.finish(id);
      return;
    }
    this.finishResolution(ds, result, now);
    this.pump(now);
  }

  /**
   * Applies a new policy. The caller validated it as a whole; this never fails half-way. Removed clients
   * lose their peer; bindings a resource no longer allows lose their mappings (and sessions) at once.
   */
  setConfig(config: PolicyConfig, now: number): void {
    this.resources = new Map(config.resources.map((r) => [r.id, r]));
    const next = new Map(config.clients.map((c) => [c.id, c]));
    for (const [id, state] of this.clients) {
      const cfg = next.get(id);
      if (!cfg || cfg.publicKey !== state.cfg.publicKey) {
        this.log('info', 'client removed from the policy', { client: id });
        this.dropClient(state);
      }
    }
    for (const cfg of config.clients) {
      let state = this.clients.get(cfg.id);
      if (!state) {
        state = {
          cfg,
          allowed: new Set(cfg.resources),
          bindings: new Map(),
          proxies: new Map(),
          domains: new Map(),
          pendingResolutions: 0,
        };
        this.clients.set(cfg.id, state);
        this.byKey.set(cfg.publicKey, cfg.id);
        this.emitAddPeer(cfg);
        continue;
      }
      const ipsChanged = state.cfg.tunnelIps.join(',') !== cfg.tunnelIps.join(',');
      state.cfg = cfg;
      state.allowed = new Set(cfg.resources);
      if (ipsChanged) {
        // Re-adding a peer replaces it with an empty NAT: every mapping has to go in again.
        this.emitAddPeer(cfg);
        for (const e of state.proxies.values()) e.installed = undefined;
      }
      for (const b of [...state.bindings.values()]) {
        const why = this.bindingInvalidReason(state, b);
        if (why !== undefined) {
          this.counters.policyRemovals++;
          this.log('info', 'policy no longer allows a domain; removing its mappings', {
            client: cfg.id,
            resource: b.resourceId,
            domain: b.domain,
            reason: why,
          });
          this.removeBinding(state, b, now, why);
        }
      }
      for (const e of state.proxies.values()) this.sync(state, e, now);
    }
  }

  // ---- AssignedIps ----

  /** Validation as in docs/architecture.md#the-gateways-policy, in its order; the first failure is the reason. */
  private validateAssignedIps(
    client: ClientBindings | undefined,
    msg: ReceivedAssignedIps,
  ):
    | { client: ClientBindings; resource: ResourceConfig; ips: Ip[] }
    | { reason: RejectReason; detail: string } {
    if (!client) return { reason: 'unknown-client', detail: 'no client with this public key' };
    const resource = this.resources.get(msg.resource);
    if (!resource) return { reason: 'unknown-resource', detail: `no resource "${msg.resource}"` };
    if (!client.allowed.has(resource.id)) {
      return {
        reason: 'resource-not-allowed',
        detail: `client may use: ${[...client.allowed].join(', ') || 'nothing'}`,
      };
    }
    if (!resource.pattern.matches(msg.domain)) {
      return {
        reason: 'domain-not-matching',
        detail: `"${msg.domain}" does not match ${resource.pattern.text}`,
      };
    }
    const checked = checkProxyIps(msg.proxy_ips, resource.ipStack);
    if ('reason' in checked) return checked;
    return { client, resource, ips: checked.ips };
  }

  private onAssignedIps(
    publicKey: string,
    maybeClient: ClientBindings | undefined,
    msg: ReceivedAssignedIps,
    now: number,
  ): void {
    const domain = normalizeDomain(msg.domain);
    const verdict = this.validateAssignedIps(maybeClient, msg);
    if ('reason' in verdict) {
      bump(this.counters.assignedIpsRejected, verdict.reason);
      this.log('warn', 'AssignedIps rejected', {
        client: maybeClient?.cfg.id ?? publicKey,
        resource: msg.resource,
        domain,
        reason: verdict.reason,
        detail: verdict.detail,
      });
      this.send(maybeClient?.cfg.id, publicKey, {
        resource: msg.resource,
        domain,
        status: 'inactive',
        seq: msg.seq,
        reason: verdict.reason,
      });
      return;
    }
    const { client, resource, ips: proxies } = verdict;

    for (const p of proxies) {
      const held = client.proxies.get(p.text);
      if (!held || held.domain === domain) continue;
      this.log('info', 'client gave a proxy IP to another domain; dropping the bindings that held it', {
        client: client.cfg.id,
        proxyIp: p.text,
        from: held.domain,
        to: domain,
        resource: resource.id,
      });
      for (const key of [...held.bindings]) {
        const stale = client.bindings.get(key);
        if (!stale) continue;
        this.counters.renumberResets++;
        this.removeBinding(client, stale, now, undefined);
      }
    }

    const key = bindingKey(domain, resource.id);
    let b = client.bindings.get(key);
    if (b && !sameIps(b.proxies, proxies)) {
      // The same (domain, resource) with other proxy IPs: the client renumbered this domain only.
      this.log('info', 'client changed the proxy IPs of a domain; replacing them', {
        client: client.cfg.id,
        resource: resource.id,
        domain,
      });
      this.removeBinding(client, b, now, undefined, false);
      b = undefined;
    }
    // A client registering names without end must not grow the gateway's memory without end, nor be locked
    // out once it reaches its share: the least recently used binding makes room. Before the domain's state is
    // taken: the one evicted may be the last binding of this same domain, whose state goes with it.
    if (!b && client.bindings.size >= this.opts.maxBindingsPerClient)
      this.evictLeastRecentlyUsed(client, now);
    const ds = this.domainState(domain);
    if (b) {
      this.counters.assignedIpsDuplicate++;
      this.log('debug', 'AssignedIps repeated', { client: client.cfg.id, resource: resource.id, domain });
    } else {
      this.counters.assignedIpsAccepted++;
      b = {
        key,
        domain,
        resourceId: resource.id,
        proxies,
        seq: msg.seq,
        awaiting: false,
        lastStatus: undefined,
        refused: false,
        assertedAt: now,
        expiry: new DeadlineSlot<BindingRef>({ clientId: client.cfg.id, key }),
      };
      client.bindings.set(key, b);
      let keys = client.domains.get(domain);
      if (!keys) {
        keys = new Set();
        client.domains.set(domain, keys);
      }
      keys.add(key);
      ds.users.add(client.cfg.id);
      for (const p of proxies) {
        let e = client.proxies.get(p.text);
        if (!e) {
          e = {
            ip: p,
            domain,
            bindings: new Set(),
            real: undefined,
            expiresAt: undefined,
            installed: undefined,
          };
          client.proxies.set(p.text, e);
        }
        e.bindings.add(key);
      }
      this.log('info', 'AssignedIps accepted; proxy IPs registered', {
        client: client.cfg.id,
        resource: resource.id,
        domain,
        proxyIps: proxies.map((p) => p.text),
      });
    }
    b.seq = msg.seq;
    b.awaiting = true;
    b.assertedAt = now;
    // The client's bindings are kept in the order they were last asserted: the first is the least recently used.
    client.bindings.delete(key);
    client.bindings.set(key, b);
    if (!b.expiry.scheduled) this.expiries.schedule(b.expiry, now + this.opts.bindingIdleMs);

    if (ds.answer && ds.answer.expiresAt > now) {
      this.counters.cacheHits++;
      this.applyAnswer(client, b, ds.answer);
      for (const p of b.proxies) this.sync(client, client.proxies.get(p.text) as ProxyEntry, now);
      this.reply(client, b, ds);
      return;
    }
    for (const p of b.proxies) this.sync(client, client.proxies.get(p.text) as ProxyEntry, now);
    if (ds.negative && ds.negative.until > now && !this.hasAddress(client, b)) {
      this.counters.negativeCacheHits++;
      this.reply(client, b, ds);
      return;
    }
    if (this.overShare(client, ds)) {
      this.reply(client, b, ds, 'resolver-busy');
      return;
    }
    this.startResolution(ds, now, client);
  }

  // ---- resolution ----

  private startResolution(ds: DomainState, now: number, requester: ClientBindings): void {
    if (this.slots.pending(ds)) {
      this.counters.resolutionsJoined++;
      return;
    }
    if (this.slots.hasFreeSlot()) {
      this.charge(ds, requester);
      this.launch(ds, now);
      return;
    }
    if (this.slots.enqueue(ds.domain)) {
      this.counters.resolutionsQueued++;
      this.charge(ds, requester);
      return;
    }
    this.counters.resolutionsRefused++;
    this.log('warn', 'too many resolutions; refused', {
      domain: ds.domain,
      inFlight: this.slots.inFlight,
      queued: this.slots.waiting,
    });
    ds.lastFailure = 'resolver-busy';
    for (const clientId of ds.users) {
      const client = this.clients.get(clientId);
      if (!client) continue;
      for (const b of this.bindingsOf(client, ds.domain)) if (b.awaiting) this.reply(client, b, ds);
    }
  }

  /**
   * Whether starting a resolution of `ds` for `client` would exceed the client's share of the resolver
   * (counted and logged when it would). Joining one in flight or waiting is free.
   */
  private overShare(client: ClientBindings, ds: DomainState): boolean {
    if (this.slots.pending(ds)) return false;
    if (client.pendingResolutions < this.opts.maxPendingResolutionsPerClient) return false;
    this.counters.resolutionsRefusedForClient++;
    this.log('warn', 'client has too many resolutions pending; refused', {
      client: client.cfg.id,
      domain: ds.domain,
      pending: client.pendingResolutions,
    });
    return true;
  }

  /** Counts a resolution against the budget of the client whose request starts it. */
  private charge(ds: DomainState, requester: ClientBindings): void {
    ds.requester = requester.cfg.id;
    requester.pendingResolutions++;
  }

  /** The pending resolution of `ds` ended (answered, or dropped from the queue): its requester may start another. */
  private refund(ds: DomainState): void {
    if (ds.requester === undefined) return;
    const client = this.clients.get(ds.requester);
    if (client) client.pendingResolutions = Math.max(0, client.pendingResolutions - 1);
    ds.requester = undefined;
  }

  private launch(ds: DomainState, now: number): void {
    const id = this.slots.launch(ds, now);
    this.counters.resolutionsStarted++;
    this.commands.push({ type: 'resolve', id, domain: ds.domain });
  }

  /** Starts queued resolutions while slots are free. */
  private pump(now: number): void {
    for (const domain of this.slots.startable()) {
      const ds = this.domains.get(domain);
      if (ds && !ds.inflight && ds.users.size > 0) this.launch(ds, now);
      else if (ds) this.refund(ds);
    }
  }

  private finishResolution(ds: DomainState, r: ResolutionResult, now: number): void {
    const started = ds.inflight?.startedAt ?? now;
    if (ds.inflight) this.slots.finish(ds.inflight.id);
    ds.inflight = undefined;
    this.refund(ds);
    this.latency.observe(Math.max(0, now - started) / 1000);
    const ipv4 = sortedIps(r.ipv4, 4);
    const ipv6 = sortedIps(r.ipv6, 6);
    const busy = r.outcome === 'error' && r.error === 'busy';
    const outcome = busy
      ? 'resolver-busy'
      : r.outcome === 'ok' && ipv4.length + ipv6.length === 0
        ? 'no-records'
        : r.outcome;
    bump(this.counters.resolutionOutcomes, outcome);
    const ttlMs = Math.max(0, r.ttlSeconds) * 1000;
    const logFields = {
      domain: ds.domain,
      outcome,
      ipv4: ipv4.map((i) => i.text),
      ipv6: ipv6.map((i) => i.text),
      ttlSeconds: r.ttlSeconds,
      elapsedMs: now - started,
      ...(r.error === undefined ? {} : { error: r.error }),
    };
    let authoritative = true;
    if (outcome === 'ok') {
      const hadAnswer = ds.answer !== undefined;
      ds.answer = { ipv4, ipv6, expiresAt: now + ttlMs };
      ds.negative = undefined;
      ds.lastFailure = undefined;
      if (!hadAnswer) {
        ds.healStepMs = this.opts.healInitialMs;
        ds.healNextAt = 0;
      }
      this.log('info', 'domain resolved', logFields);
    } else if (outcome === 'nxdomain' || outcome === 'no-records') {
      ds.answer = undefined;
      ds.negative = { reason: outcome, until: now + Math.min(ttlMs, this.opts.maxNegativeCacheMs) };
      ds.lastFailure = outcome;
      this.log('info', 'domain has no addresses', logFields);
    } else {
      // Timeout, error or a busy resolver: says nothing about the records. Working mappings stay.
      ds.lastFailure = outcome;
      authoritative = false;
      this.log('warn', 'domain resolution failed', logFields);
    }
    for (const clientId of ds.users) {
      const client = this.clients.get(clientId);
      if (!client) continue;
      if (authoritative) this.applyToClientDomain(client, ds, now, undefined);
      else for (const b of this.bindingsOf(client, ds.domain)) this.statusAfterChange(client, b, ds);
    }
    if (ds.users.size === 0) this.domains.delete(ds.domain);
  }

  /** Installs the domain's current knowledge for one client and tells it what changed. */
  private applyToClientDomain(
    client: ClientBindings,
    ds: DomainState,
    now: number,
    why: string | undefined,
  ): void {
    const bindings = this.bindingsOf(client, ds.domain);
    for (const b of bindings) this.applyAnswer(client, b, ds.answer);
    for (const b of bindings) {
      for (const p of b.proxies) {
        const e = client.proxies.get(p.text);
        if (e) this.sync(client, e, now);
      }
    }
    for (const b of bindings) this.statusAfterChange(client, b, ds, why);
  }

  /** Sets the desired real address of every proxy IP of a binding: proxy k → sorted real k mod n. */
  private applyAnswer(client: ClientBindings, b: Binding, answer: Answer | undefined): void {
    const allow = this.resources.get(b.resourceId)?.allowDestinations;
    let offered = 0;
    let refused = 0;
    for (const family of [4, 6] as const) {
      if (!b.proxies.some((p) => p.family === family)) continue;
      const all = answer ? (family === 4 ? answer.ipv4 : answer.ipv6) : [];
      const reals = all.filter((ip) => {
        const why = this.opts.destinations.refuses(ip, allow);
        if (why === undefined) return true;
        refused++;
        this.log('warn', 'resolved address refused by the destination filter', {
          client: client.cfg.id,
          resource: b.resourceId,
          domain: b.domain,
          address: ip.text,
          reason: why,
        });
        return false;
      });
      offered += reals.length;
      let k = 0;
      for (const p of b.proxies) {
        if (p.family !== family) continue;
        const e = client.proxies.get(p.text);
        if (!e) continue;
        const real = reals.length > 0 ? reals[k % reals.length] : undefined;
        e.real = real?.text;
        e.expiresAt = real && answer ? answer.expiresAt : undefined;
        k++;
      }
    }
    this.counters.destinationsRefused += refused;
    b.refused = refused > 0 && offered === 0;
  }

  private statusAfterChange(client: ClientBindings, b: Binding, ds: DomainState, why?: string): void {
    if (b.awaiting) {
      this.reply(client, b, ds);
      return;
    }
    const status = this.hasAddress(client, b) ? 'active' : 'inactive';
    if (b.lastStatus !== undefined && b.lastStatus !== status) {
      this.counters.unsolicitedStatuses++;
      this.log(
        'info',
        status === 'active' ? 'mapping healed; telling the client' : 'domain lost its addresses',
        {
          client: client.cfg.id,
          resource: b.resourceId,
          domain: b.domain,
          ...(why === undefined ? {} : { how: why }),
        },
      );
      this.reply(client, b, ds);
    }
  }

  private hasAddress(client: ClientBindings, b: Binding): boolean {
    return b.proxies.some((p) => client.proxies.get(p.text)?.real !== undefined);
  }

  private reply(client: ClientBindings, b: Binding, ds: DomainState, reason?: string): void {
    const active = reason === undefined && this.hasAddress(client, b);
    const body: DomainStatus = {
      resource: b.resourceId,
      domain: b.domain,
      status: active ? 'active' : 'inactive',
      seq: b.seq,
    };
    if (!active) {
      body.reason =
        reason ??
        (b.refused
          ? 'destination-not-allowed'
          : (ds.lastFailure ?? (ds.answer ? 'no-address-for-stack' : 'unresolved')));
    }
    b.awaiting = false;
    b.lastStatus = body.status;
    this.send(client.cfg.id, client.cfg.publicKey, body);
  }

  private send(clientId: string | undefined, publicKey: string, body: DomainStatus): void {
    this.counters.statusesSent[body.status]++;
    this.log('info', `DomainStatus ${body.status}`, {
      client: clientId ?? publicKey,
      resource: body.resource,
      domain: body.domain,
      seq: body.seq,
      ...(body.reason === undefined ? {} : { reason: body.reason }),
    });
    this.commands.push({ type: 'send-status', clientId, publicKey, body });
  }

  // ---- state plumbing ----

  private domainState(domain: string): DomainState {
    let ds = this.domains.get(domain);
    if (!ds) {
      ds = {
        domain,
        users: new Set(),
        inflight: undefined,
        answer: undefined,
        negative: undefined,
        lastFailure: undefined,
        healNextAt: 0,
        healStepMs: this.opts.healInitialMs,
        requester: undefined,
      };
      this.domains.set(domain, ds);
    }
    return ds;
  }

  private bindingsOf(client: ClientBindings, domain: string): Binding[] {
    const keys = client.domains.get(domain);
    if (!keys) return [];
    return [...keys].map((k) => client.bindings.get(k)).filter((b): b is Binding => b !== undefined);
  }

  private lookupProxy(publicKey: string, proxyIp: string): [ClientBindings, ProxyEntry] | undefined {
    const clientId = this.byKey.get(publicKey);
    const client = clientId === undefined ? undefined : this.clients.get(clientId);
    const ip = parseIp(proxyIp);
    const entry = client && ip ? client.proxies.get(ip.text) : undefined;
    if (!client || !entry) {
      this.counters.unknownProxyEvents++;
      return undefined;
    }
    return [client, entry];
  }

  /** Brings the runtime's mapping of one proxy IP in line with what we want; emits only on change. */
  private sync(client: ClientBindings, e: ProxyEntry, now: number): void {
    const ports = this.portsOf(e);
    const portsKey = ports === undefined ? '*' : ports.join(',');
    const want: Installed = {
      real: e.real,
      expiresAt: e.real === undefined ? undefined : e.expiresAt,
      portsKey,
    };
    const have = e.installed;
    if (
      have &&
      have.real === want.real &&
      have.expiresAt === want.expiresAt &&
      have.portsKey === want.portsKey
    ) {
      return;
    }
    e.installed = want;
    this.counters.mappingsSet++;
    this.commands.push({
      type: 'set-mapping',
      clientId: client.cfg.id,
      publicKey: client.cfg.publicKey,
      proxyIp: e.ip.text,
      ...(want.real === undefined ? {} : { realIp: want.real }),
      ...(want.real === undefined || want.expiresAt === undefined
        ? {}
        : { ttlMs: Math.max(0, want.expiresAt - now) }),
      ...(ports === undefined ? {} : { ports }),
    });
  }

  /** The union of the port rules of every resource using this proxy IP; undefined (all) if one has none. */
  private portsOf(e: ProxyEntry): string[] | undefined {
    const rules = new Set<string>();
    for (const key of e.bindings) {
      const resourceId = key.slice(key.indexOf('\n') + 1);
      const r = this.resources.get(resourceId);
      if (!r?.ports) return undefined;
      for (const p of r.ports) rules.add(p);
    }
    return [...rules].sort();
  }

  private bindingInvalidReason(client: ClientBindings, b: Binding): string | undefined {
    const r = this.resources.get(b.resourceId);
    if (!r) return 'resource-removed';
    if (!client.allowed.has(r.id)) return 'resource-not-allowed';
    if (!r.pattern.matches(b.domain)) return 'domain-not-matching';
    if (!b.proxies.every((p) => stackAllows(r.ipStack, p.family))) return 'proxy-ip-stack';
    return undefined;
  }

  /** Drops one binding; proxy IPs no other binding uses lose their mapping and sessions. */
  private removeBinding(
    client: ClientBindings,
    b: Binding,
    now: number,
    notifyReason: string | undefined,
    release = true,
  ): void {
    client.bindings.delete(b.key);
    this.expiries.cancel(b.expiry);
    const keys = client.domains.get(b.domain);
    keys?.delete(b.key);
    for (const p of b.proxies) {
      const e = client.proxies.get(p.text);
      if (!e) continue;
      e.bindings.delete(b.key);
      if (e.bindings.size === 0) this.removeProxy(client, e);
      else this.sync(client, e, now);
    }
    if (keys && keys.size === 0) {
      client.domains.delete(b.domain);
      // Not when the binding is being replaced: the domain's cache is about to serve the new one.
      if (release) this.releaseDomain(client.cfg.id, b.domain);
    }
    if (notifyReason !== undefined && b.lastStatus !== undefined) {
      this.send(client.cfg.id, client.cfg.publicKey, {
        resource: b.resourceId,
        domain: b.domain,
        status: 'inactive',
        seq: b.seq,
        reason: notifyReason,
      });
    }
  }

  private removeProxy(client: ClientBindings, e: ProxyEntry): void {
    client.proxies.delete(e.ip.text);
    this.counters.mappingsRemoved++;
    this.commands.push({
      type: 'remove-mapping',
      clientId: client.cfg.id,
      publicKey: client.cfg.publicKey,
      proxyIp: e.ip.text,
    });
  }

  /** Forgets every binding of a client and removes its mappings (and so its sessions). */
  private resetClient(client: ClientBindings, _now: number): void {
    for (const b of client.bindings.values()) this.expiries.cancel(b.expiry);
    for (const e of [...client.proxies.values()]) this.removeProxy(client, e);
    for (const domain of client.domains.keys()) this.releaseDomain(client.cfg.id, domain);
    client.bindings.clear();
    client.domains.clear();
  }

  private dropClient(client: ClientBindings): void {
    for (const b of client.bindings.values()) this.expiries.cancel(b.expiry);
    for (const domain of client.domains.keys()) this.releaseDomain(client.cfg.id, domain);
    this.clients.delete(client.cfg.id);
    this.byKey.delete(client.cfg.publicKey);
    // Removing the peer removes its NAT, its mappings and its sessions in one step.
    this.commands.push({ type: 'remove-peer', clientId: client.cfg.id, publicKey: client.cfg.publicKey });
  }

  private releaseDomain(clientId: string, domain: string): void {
    const ds = this.domains.get(domain);
    if (!ds) return;
    ds.users.delete(clientId);
    if (ds.users.size === 0 && !ds.inflight) {
      if (this.slots.dequeue(domain)) this.refund(ds);
      this.domains.delete(domain);
    }
  }

  private emitAddPeer(cfg: GatewayClient): void {
    this.commands.push({
      type: 'add-peer',
      clientId: cfg.id,
      publicKey: cfg.publicKey,
      allowedIps: cfg.tunnelIps.map((ip) => `${ip}/${ip.includes(':') ? 128 : 32}`),
    });
  }

  /**
   * Makes room for one binding: looks at the `EVICTION_CANDIDATES` least recently asserted bindings, moves
   * those that carried traffic since (their NAT sessions say so) to the recent end, and drops the least
   * recently used of the rest. Costs a constant, never a scan of the client's table.
   */
  private evictLeastRecentlyUsed(client: ClientBindings, now: number): void {
    const candidates: Array<{ b: Binding; lastUse: number }> = [];
    for (const b of client.bindings.values()) {
      let lastUse = b.assertedAt;
      for (const p of b.proxies) {
        const idle = this.opts.mappingIdleMs(client.cfg.publicKey, p.text);
        if (idle !== null && idle !== undefined) lastUse = Math.max(lastUse, now - idle);
      }
      candidates.push({ b, lastUse });
      if (candidates.length >= EVICTION_CANDIDATES) break;
    }
    if (candidates.length === 0) return;
    let victim = candidates[0] as { b: Binding; lastUse: number };
    for (const c of candidates) if (c.lastUse < victim.lastUse) victim = c;
    for (const c of candidates) {
      if (c !== victim && c.lastUse > c.b.assertedAt) {
        client.bindings.delete(c.b.key);
        client.bindings.set(c.b.key, c.b);
      }
    }
    this.counters.bindingsEvicted++;
    this.log('info', 'binding evicted for a new one (the client holds its limit)', {
      client: client.cfg.id,
      resource: victim.b.resourceId,
      domain: victim.b.domain,
      idleMs: Math.round(now - victim.lastUse),
    });
    this.removeBinding(client, victim.b, now, 'evicted');
  }

  /**
   * Drops the bindings that are due and unused: none of their proxy IPs carried a NAT session, and the client
   * did not re-send them, for `bindingIdleMs`. A binding still in use is looked at again when it could next
   * be idle. Costs the bindings that are due.
   */
  private expireIdleBindings(now: number): void {
    const idleLimit = this.opts.bindingIdleMs;
    for (let ref = this.expiries.popDue(now); ref; ref = this.expiries.popDue(now)) {
      const client = this.clients.get(ref.clientId);
      const b = client?.bindings.get(ref.key);
      if (!client || !b) continue;
      let idle = now - b.assertedAt;
      for (const p of b.proxies) {
        const runtime = this.opts.mappingIdleMs(client.cfg.publicKey, p.text);
        if (runtime !== null && runtime !== undefined) idle = Math.min(idle, runtime);
      }
      if (idle < idleLimit) {
        this.expiries.schedule(b.expiry, now + (idleLimit - idle));
        continue;
      }
      this.counters.bindingsExpired++;
      this.log('info', 'binding idle; dropped', {
        client: client.cfg.id,
        resource: b.resourceId,
        domain: b.domain,
        idleMs: Math.round(idle),
      });
      this.removeBinding(client, b, now, 'expired');
    }
  }

  private log(level: LogLevel, msg: string, fields: Record<string, unknown>): void {
    this.commands.push({ type: 'log', level, msg, fields });
  }
}
