// The client's per-domain NAT setup state machine (docs/architecture.md#the-clients-state-machine).
//
// For every (gateway, domain, resource) that an application has looked up, the client must tell the gateway
// which proxy IPs stand for the domain (`AssignedIps`), and the gateway answers with `DomainStatus` once it
// has resolved the domain. Both messages travel inside the tunnel, which loses packets, so this machine decides
// when to (re)send, when to hold an application's packets back, and when to stop trying. It is sans-IO: the
// caller hands in `now`, drains effects with `pollEffect()` and arms one timer from `pollTimeout()`. Nothing in
// this file reads a clock, sets a timer or touches a socket; that is what lets the tests run thousands of
// lossy exchanges with a fake clock in milliseconds.
//
// The invariants everything below relies on:
// - An entry is in `resendIndex` if and only if it is `pending` and not `deferred`; its deadline there is the
//   moment it becomes eligible for a resend (last send + resend interval). "Any DNS query re-checks every pending entry" is a
//   drain of that index up to `now`, so a query touches only the entries it actually resends, never the
//   confirmed or failed ones, and never pending ones that are not due.
// - An entry is in `timerIndex` if and only if it is `pending`, gated `buffer`, and an application packet has
//   been buffered for it since it last became pending (`waiting`). Only such entries may send on their own,
//   with backoff; nothing timer-driven ever touches `confirmed`, `failed` or `recreating` entries.
// - `unanswered` counts sends since the entry last became pending or last heard a status. A send that would
//   exceed `maxUnansweredSends` turns the entry `failed` instead, so one episode of a dead gateway costs at most
//   `maxUnansweredSends` messages per entry. Only a DNS query for the entry's own domain starts a new episode.
// - `gate` mirrors exactly what the last emitted `gate` effect told the packet path for this key (a new key is
//   `pass` on the packet path). Gate, flush and discard effects are emitted only when the gate changes, which
//   is what makes every input idempotent: the same status twice yields effects once.
// - Sends nobody waits for (a query, no application packet yet) spend a per-gateway budget (by default
//   unlimited; the daemon sets one below the gateway's control budget). Without a token such a send is
//   `deferred`: nothing is sent, nothing counts as unanswered, and the entry waits, outside `resendIndex`, for
//   its own domain's next query or its first packet. A send an application waits for is never deferred. So a
//   flood of made-up names (a page asking thousands) cannot spend the gateway's share that real connections
//   need.
// - At most `maxEntries` entries: a new one past that drops the least recently used (queried or sent to).
// - Every effect names an entry that exists when the effect is queued. The only effects for an entry that is
//   then removed are the `discard` + `gate pass` that release its buffer as part of the removal itself.

import { DeadlineQueue, DeadlineSlot } from '../common/deadline-queue.js';

export type NatKey = { gatewayId: string; domain: string; resourceId: string };

export type NatState = 'pending' | 'recreating' | 'confirmed' | 'failed';

export type GateMode = 'buffer' | 'pass';

export type Effect =
  | {
      type: 'send-assigned-ips';
      gatewayId: string;
      domain: string;
      resourceId: string;
      proxyIps: string[];
      seq: number;
    }
  | { type: 'gate'; key: NatKey; mode: GateMode }
  | { type: 'flush'; key: NatKey }
  | { type: 'discard'; key: NatKey };

export interface DnsResourceNatOptions {
  /** Minimum time between two sends of one entry, and the first backoff step. Default 2,000 ms. */
  resendIntervalMs?: number | undefined;
  /** Sends without any `DomainStatus` after which a pending entry gives up (`failed`, reason `timeout`). Default 6. */
  maxUnansweredSends?: number | undefined;
  /** Sends per gateway per second that no application waits for; past it they are deferred. Default unlimited. */
  speculativeSendsPerSecond?: number | undefined;
  /** Such sends at once, per gateway. Default the per-second rate. */
  speculativeSendBurst?: number | undefined;
  /** Entries at most; a new one past that drops the least recently used. Default unlimited. */
  maxEntries?: number | undefined;
}

export interface DnsQueryMatch {
  gatewayId: string;
  resourceId: string;
  proxyIps: string[];
}

export interface DomainStatusInput {
  domain: string;
  resourceId: string;
  /** Anything other than `active` (including strings a newer gateway may invent) reads as `inactive`. */
  status: 'active' | 'inactive';
  seq?: number | undefined;
  reason?: string | undefined;
}

/** Why an entry is `failed`: the gateway said so, or it never answered. */
export type FailureReason = 'inactive' | 'timeout';

/** One entry as `dnsnat status` shows it. */
export interface NatEntrySnapshot {
  gatewayId: string;
  domain: string;
  resourceId: string;
  state: NatState;
  gate: GateMode;
  proxyIps: string[];
  /** Sends in the current episode that no status has answered yet. */
  unansweredSends: number;
  /** Sends over the entry's whole life. */
  totalSends: number;
  lastSentAtMs: number;
  lastSentSeq: number;
  failureReason?: FailureReason;
  /** The gateway's own explanation of an `inactive` status, when it gave one. */
  failureDetail?: string;
}

export interface DnsResourceNatCounters {
  /** `send-assigned-ips` effects emitted. */
  sends: number;
  /** Of those, the ones the timer sent on its own (an application was waiting). */
  timerSends: number;
  /** Entries that gave up after `maxUnansweredSends`. */
  timeouts: number;
  statusesApplied: number;
  /** Statuses ignored because their seq was older than what the entry had applied, or newer than it sent. */
  statusesStale: number;
  /** Statuses for a (gateway, domain, resource) that is not tracked. */
  statusesUnknownEntry: number;
  /**
   * Instrument for cost tests: entries looked at by inputs (lookups, entries of the queried domain,
   * entries drained from an index, entries removed by a clear). Never a timer.
   */
  entryVisits: number;
  /** Instrument for cost tests: deadline comparisons in the two ordered indexes. */
  deadlineComparisons: number;
  /** Sends deferred because no application waited and the gateway's speculative budget was spent. */
  sendsDeferred: number;
  /** Entries dropped to stay within `maxEntries`. */
  entriesEvicted: number;
}

const DEFAULT_RESEND_INTERVAL_MS = 2_000;
const DEFAULT_MAX_UNANSWERED_SENDS = 6;
/** Backoff doubles from the resend interval and stops at 4× it: 2 s, 4 s, 8 s, 8 s … with the defaults. */
const MAX_BACKOFF_FACTOR = 4;

/** Domains are compared lower-case and without the trailing dot of a fully qualified name. */
export function normalizeDomain(domain: string): string {
  const lower = domain.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Unambiguous key of (gateway, resource) inside one domain: the length prefix keeps "a|b"+"c" ≠ "a"+"b|c". */
function subKey(gatewayId: string, resourceId: string): string {
  return `${gatewayId.length}:${gatewayId}|${resourceId}`;
}

function sameIps(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

class Entry {
  state: NatState = 'pending';
  gate: GateMode = 'pass';
  /** For `recreating` only: whether traffic must buffer once the entry is pending again (it was failed). */
  bufferOnResume = false;
  /** An application packet has been buffered during the current pending episode. */
  waiting = false;
  /** Pending, but its last send was deferred (nothing sent): the next query or packet sends. */
  deferred = false;
  unanswered = 0;
  totalSends = 0;
  lastSentAt = 0;
  lastSentSeq = 0;
  /** Statuses with a lower seq are stale: first the entry's first send, then the last applied status. */
  minSeq = 0;
  failure: FailureReason | undefined = undefined;
  failureDetail: string | undefined = undefined;
  readonly resendSlot: DeadlineSlot<Entry>;
  readonly timerSlot: DeadlineSlot<Entry>;

  constructor(
    readonly key: Readonly<NatKey>,
    readonly subKey: string,
    public proxyIps: readonly string[],
  ) {
    this.resendSlot = new DeadlineSlot<Entry>(this);
    this.timerSlot = new DeadlineSlot<Entry>(this);
  }
}

export class DnsResourceNat {
  private readonly resendIntervalMs: number;
  private readonly maxUnansweredSends: number;
  private readonly speculativePerMs: number;
  private readonly speculativeBurst: number;
  private readonly maxEntries: number;
  /** Speculative-send tokens per gateway. */
  private readonly budgets = new Map<string, { tokens: number; at: number }>();
  /** Every entry, least recently used first (a use moves it to the end). */
  private readonly lru = new Set<Entry>();

  // Index by domain: a query touches only the entries of its own domain. The per-gateway and per-resource
  // sets make clearing cost proportional to what is removed.
  private readonly byDomain = new Map<string, Map<string, Entry>>();
  private readonly byGateway = new Map<string, Set<Entry>>();
  private readonly byResource = new Map<string, Set<Entry>>();
  private count = 0;

  private readonly resendIndex = new DeadlineQueue<Entry>();
  private readonly timerIndex = new DeadlineQueue<Entry>();

  // FIFO of effects; `effectsHead` avoids the O(n) of Array.shift.
  private effects: Effect[] = [];
  private effectsHead = 0;

  // One counter for the whole machine, so a seq is never reused, even by an entry that was dropped and created
  // again: a late status from an earlier life is always below the new life's first seq, hence stale.
  private nextSeq = 1;

  private readonly stats = {
    sends: 0,
    timerSends: 0,
    timeouts: 0,
    statusesApplied: 0,
    statusesStale: 0,
    statusesUnknownEntry: 0,
    entryVisits: 0,
    sendsDeferred: 0,
    entriesEvicted: 0,
  };

  constructor(options: DnsResourceNatOptions = {}) {
    const interval = options.resendIntervalMs ?? DEFAULT_RESEND_INTERVAL_MS;
    const max = options.maxUnansweredSends ?? DEFAULT_MAX_UNANSWERED_SENDS;
    // A zero interval would let one query resend the same entry in a loop; a zero budget would fail entries
    // before their first message.
    if (!Number.isFinite(interval) || interval <= 0) {
      throw new RangeError(`resendIntervalMs must be a positive number of milliseconds, got ${interval}`);
    }
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`maxUnansweredSends must be an integer of at least 1, got ${max}`);
    }
    this.resendIntervalMs = interval;
    this.maxUnansweredSends = max;
    const rate = options.speculativeSendsPerSecond ?? Number.POSITIVE_INFINITY;
    if (!(rate > 0)) throw new RangeError(`speculativeSendsPerSecond must be positive, got ${rate}`);
    this.speculativePerMs = rate / 1000;
    this.speculativeBurst = options.speculativeSendBurst ?? rate;
    this.maxEntries = options.maxEntries ?? Number.POSITIVE_INFINITY;
    if (!(this.maxEntries >= 1))
      throw new RangeError(`maxEntries must be at least 1, got ${this.maxEntries}`);
  }

  /**
   * An application asked for `domain` (A, AAAA or any type the stub answers locally), and `matches` lists the
   * (gateway, resource) pairs whose patterns it matches. `matches` is empty for a non-resource name, which
   * still counts as "a DNS query" for the resend check of pending entries.
   */
  onDnsQuery(domain: string, matches: readonly DnsQueryMatch[], nowMs: number): void {
    const d = normalizeDomain(domain);
    const ofDomain = this.byDomain.get(d);
    if (ofDomain !== undefined) {
      // The query is the application saying "I still want this name": a confirmed mapping is refreshed (the
      // gateway re-resolves) while traffic keeps flowing, and a failed one gets a fresh chance, with its
      // traffic held until the gateway answers. Pending and recreating entries are left alone: an in-flight
      // handshake and its buffer are never thrown away. The gate does not change here but in `update`, so an
      // entry that the query does not go on to update never buffers traffic that nobody will resend for.
      for (const entry of ofDomain.values()) {
        this.stats.entryVisits++;
        if (entry.state === 'confirmed') {
          entry.state = 'recreating';
          entry.bufferOnResume = false;
        } else if (entry.state === 'failed') {
          entry.state = 'recreating';
          entry.bufferOnResume = true;
        }
      }
    }
    for (const match of matches) this.update(match.gatewayId, d, match.resourceId, match.proxyIps, nowMs);
    this.resendDue(nowMs);
  }

  /**
   * The packet path saw traffic for `key` and asks what to do with it. Unknown keys pass: without an entry
   * there is no handshake to wait for.
   */
  onOutgoingPacket(key: NatKey, nowMs: number): GateMode {
    const entry = this.lookup(key.gatewayId, normalizeDomain(key.domain), key.resourceId);
    if (entry === undefined) return 'pass';
    if (entry.state === 'pending') {
      if (entry.gate === 'buffer' && !entry.waiting) {
        // From now on an application is blocked on this entry, so it may not depend on the next DNS query or
        // packet to be retried: arm the backoff timer, counted from the last send.
        entry.waiting = true;
        this.timerIndex.schedule(entry.timerSlot, entry.lastSentAt + this.backoffAfter(entry.unanswered));
      }
      if (entry.deferred || nowMs - entry.lastSentAt >= this.resendIntervalMs) {
        this.resendOrFail(entry, nowMs, false);
      }
    }
    this.touch(entry);
    return entry.gate;
  }

  /** A `DomainStatus` from `gatewayId`. Statuses for unknown entries and stale statuses are ignored. */
  onDomainStatus(gatewayId: string, status: DomainStatusInput, _nowMs: number): void {
    const entry = this.lookup(gatewayId, normalizeDomain(status.domain), status.resourceId);
    if (entry === undefined) {
      this.stats.statusesUnknownEntry++;
      return;
    }
    const seq = status.seq;
    if (seq !== undefined) {
      // A status answers one of our sends (or repeats the last one the gateway received, when it heals a
      // mapping on its own). Lower than what was applied: a reordered, older answer. Higher than anything sent:
      // not an answer to us at all (a gateway bug, or a previous client process). Both are ignored, and so is a
      // seq that is not an integer, which would poison every later comparison.
      if (!Number.isSafeInteger(seq) || seq < entry.minSeq || seq > entry.lastSentSeq) {
        this.stats.statusesStale++;
        return;
      }
      entry.minSeq = seq;
    }
    // A status without seq (a peer that does not send one) is applied as it comes.
    this.stats.statusesApplied++;
    if (status.status === 'active') {
      if (entry.state !== 'confirmed') this.confirm(entry);
    } else if (entry.state !== 'failed') {
      this.fail(entry, 'inactive', status.reason);
    } else {
      entry.failure = 'inactive';
      entry.failureDetail = status.reason;
    }
  }

  /** The gateway's connection is gone: its entries are dropped with their buffers. */
  onGatewayLost(gatewayId: string): void {
    const entries = this.byGateway.get(gatewayId);
    if (entries === undefined) return;
    for (const entry of [...entries]) this.drop(entry);
  }

  /** The resource was removed or disabled: its entries are dropped with their buffers. */
  onResourceRemoved(resourceId: string): void {
    const entries = this.byResource.get(resourceId);
    if (entries === undefined) return;
    for (const entry of [...entries]) this.drop(entry);
  }

  /**
   * The domain gave its proxy IPs up (idle, or evicted for a new name): its entries go, without effects —
   * the packet path has already forgotten their gates and buffers, and a command about them would only bring a
   * key back.
   */
  onDomainReleased(domain: string): void {
    const ofDomain = this.byDomain.get(normalizeDomain(domain));
    if (ofDomain === undefined) return;
    for (const entry of [...ofDomain.values()]) {
      entry.gate = 'pass';
      this.drop(entry);
    }
  }

  /** When `handleTimeout` must next be called, or undefined when no application waits on any entry. */
  pollTimeout(): number | undefined {
    return this.timerIndex.earliest();
  }

  handleTimeout(nowMs: number): void {
    for (;;) {
      const entry = this.timerIndex.popDue(nowMs);
      if (entry === undefined) return;
      this.stats.entryVisits++;
      this.resendOrFail(entry, nowMs, true);
    }
  }

  pollEffect(): Effect | undefined {
    if (this.effectsHead >= this.effects.length) return undefined;
    const effect = this.effects[this.effectsHead++];
    if (this.effectsHead === this.effects.length) {
      this.effects = [];
      this.effectsHead = 0;
    }
    return effect;
  }

  /** The keys tracked for `domain` (one per gateway and resource that serve it). */
  keysOf(domain: string): NatKey[] {
    const ofDomain = this.byDomain.get(normalizeDomain(domain));
    return ofDomain === undefined ? [] : [...ofDomain.values()].map((e) => e.key);
  }

  state(key: NatKey): NatState | undefined {
    return this.lookup(key.gatewayId, normalizeDomain(key.domain), key.resourceId)?.state;
  }

  size(): number {
    return this.count;
  }

  /** Every tracked entry, for `dnsnat status`. O(n): not for hot paths. */
  entries(): NatEntrySnapshot[] {
    const out: NatEntrySnapshot[] = [];
    for (const ofDomain of this.byDomain.values()) {
      for (const entry of ofDomain.values()) {
        const snapshot: NatEntrySnapshot = {
          ...entry.key,
          state: entry.state,
          gate: entry.gate,
          proxyIps: [...entry.proxyIps],
          unansweredSends: entry.unanswered,
          totalSends: entry.totalSends,
          lastSentAtMs: entry.lastSentAt,
          lastSentSeq: entry.lastSentSeq,
        };
        if (entry.failure !== undefined) snapshot.failureReason = entry.failure;
        if (entry.failureDetail !== undefined) snapshot.failureDetail = entry.failureDetail;
        out.push(snapshot);
      }
    }
    return out;
  }

  counters(): DnsResourceNatCounters {
    return {
      ...this.stats,
      deadlineComparisons: this.resendIndex.comparisons + this.timerIndex.comparisons,
    };
  }

  // --- transitions -------------------------------------------------------------------------------------------

  private update(
    gatewayId: string,
    domain: string,
    resourceId: string,
    proxyIps: string[],
    now: number,
  ): void {
    let entry = this.lookup(gatewayId, domain, resourceId);
    if (entry !== undefined) this.touch(entry);
    if (entry === undefined) {
      if (this.count >= this.maxEntries) this.evictLeastRecentlyUsed();
      entry = this.create(gatewayId, domain, resourceId, proxyIps);
      this.setGate(entry, 'buffer');
      // Statuses below the seq of this entry's first send belong to an earlier life of the key, even if that
      // send is deferred.
      entry.minSeq = this.nextSeq;
      this.send(entry, now);
      return;
    }
    // Proxy IPs are stable for the life of the state file, but if the caller hands in others, the next send
    // carries them: the latest allocation is the one applications were just given.
    if (!sameIps(entry.proxyIps, proxyIps)) entry.proxyIps = Object.freeze([...proxyIps]);
    switch (entry.state) {
      case 'recreating':
        entry.state = 'pending';
        entry.unanswered = 0;
        entry.waiting = false;
        entry.failure = undefined;
        entry.failureDetail = undefined;
        if (entry.bufferOnResume) this.setGate(entry, 'buffer');
        this.send(entry, now);
        break;
      case 'pending':
        if (entry.deferred || now - entry.lastSentAt >= this.resendIntervalMs) {
          this.resendOrFail(entry, now, false);
        }
        break;
      default:
        // confirmed or failed: unreachable from onDnsQuery, which has just moved every entry of the domain
        // to recreating. Nothing else calls update.
        break;
    }
  }

  /** The "we always check all of them" rule, as a drain of the pending entries that are due. */
  private resendDue(now: number): void {
    for (;;) {
      const entry = this.resendIndex.popDue(now);
      if (entry === undefined) return;
      this.stats.entryVisits++;
      this.resendOrFail(entry, now, false);
    }
  }

  private resendOrFail(entry: Entry, now: number, byTimer: boolean): void {
    if (entry.unanswered >= this.maxUnansweredSends) {
      this.stats.timeouts++;
      this.fail(entry, 'timeout', undefined);
      return;
    }
    if (byTimer) this.stats.timerSends++;
    this.send(entry, now);
  }

  private send(entry: Entry, now: number): void {
    if (!this.spendToken(entry.key.gatewayId, now) && !entry.waiting) {
      this.stats.sendsDeferred++;
      entry.deferred = true;
      this.resendIndex.cancel(entry.resendSlot);
      return;
    }
    entry.deferred = false;
    const seq = this.nextSeq++;
    entry.lastSentSeq = seq;
    entry.lastSentAt = now;
    entry.unanswered++;
    entry.totalSends++;
    this.stats.sends++;
    this.effects.push({
      type: 'send-assigned-ips',
      gatewayId: entry.key.gatewayId,
      domain: entry.key.domain,
      resourceId: entry.key.resourceId,
      proxyIps: [...entry.proxyIps],
      seq,
    });
    this.resendIndex.schedule(entry.resendSlot, now + this.resendIntervalMs);
    if (entry.waiting) this.timerIndex.schedule(entry.timerSlot, now + this.backoffAfter(entry.unanswered));
  }

  /** Takes a speculative-send token of `gatewayId`, if one is left. */
  private spendToken(gatewayId: string, now: number): boolean {
    if (this.speculativePerMs === Number.POSITIVE_INFINITY) return true;
    let b = this.budgets.get(gatewayId);
    if (b === undefined) {
      b = { tokens: this.speculativeBurst, at: now };
      this.budgets.set(gatewayId, b);
    }
    b.tokens = Math.min(this.speculativeBurst, b.tokens + Math.max(0, now - b.at) * this.speculativePerMs);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private touch(entry: Entry): void {
    this.lru.delete(entry);
    this.lru.add(entry);
  }

  private evictLeastRecentlyUsed(): void {
    const oldest = this.lru.values().next().value;
    if (oldest === undefined) return;
    this.stats.entriesEvicted++;
    this.drop(oldest);
  }

  private confirm(entry: Entry): void {
    entry.state = 'confirmed';
    entry.unanswered = 0;
    entry.waiting = false;
    entry.failure = undefined;
    entry.failureDetail = undefined;
    this.resendIndex.cancel(entry.resendSlot);
    this.timerIndex.cancel(entry.timerSlot);
    if (entry.gate === 'buffer') {
      // Both go to the packet path in one batch; it must apply them before its next packet, so that nothing
      // new overtakes the buffered packets and nothing is buffered after the flush.
      this.setGate(entry, 'pass');
      this.effects.push({ type: 'flush', key: entry.key });
    }
  }

  private fail(entry: Entry, reason: FailureReason, detail: string | undefined): void {
    entry.state = 'failed';
    entry.failure = reason;
    entry.failureDetail = detail;
    entry.waiting = false;
    this.resendIndex.cancel(entry.resendSlot);
    this.timerIndex.cancel(entry.timerSlot);
    // Its traffic now goes to the gateway, which answers ICMP unreachable (or heals the mapping and says so),
    // instead of waiting for an answer that will not come. Discard first, so the held packets are dropped
    // rather than released by the gate change.
    this.releaseBuffer(entry);
  }

  private drop(entry: Entry): void {
    this.stats.entryVisits++;
    this.resendIndex.cancel(entry.resendSlot);
    this.timerIndex.cancel(entry.timerSlot);
    this.releaseBuffer(entry);
    const { gatewayId, domain, resourceId } = entry.key;
    const ofDomain = this.byDomain.get(domain);
    ofDomain?.delete(entry.subKey);
    if (ofDomain?.size === 0) this.byDomain.delete(domain);
    removeFromIndex(this.byGateway, gatewayId, entry);
    removeFromIndex(this.byResource, resourceId, entry);
    this.lru.delete(entry);
    this.count--;
  }

  private releaseBuffer(entry: Entry): void {
    if (entry.gate !== 'buffer') return;
    this.effects.push({ type: 'discard', key: entry.key });
    this.setGate(entry, 'pass');
  }

  private setGate(entry: Entry, mode: GateMode): void {
    if (entry.gate === mode) return;
    entry.gate = mode;
    this.effects.push({ type: 'gate', key: entry.key, mode });
  }

  /** Time from one send to the next timer-driven one, given how many sends the episode has made. */
  private backoffAfter(sends: number): number {
    const factor = Math.min(2 ** Math.max(sends - 1, 0), MAX_BACKOFF_FACTOR);
    return this.resendIntervalMs * factor;
  }

  // --- indexes -----------------------------------------------------------------------------------------------

  private lookup(gatewayId: string, domain: string, resourceId: string): Entry | undefined {
    this.stats.entryVisits++;
    return this.byDomain.get(domain)?.get(subKey(gatewayId, resourceId));
  }

  private create(gatewayId: string, domain: string, resourceId: string, proxyIps: string[]): Entry {
    const key = Object.freeze({ gatewayId, domain, resourceId });
    const entry = new Entry(key, subKey(gatewayId, resourceId), Object.freeze([...proxyIps]));
    let ofDomain = this.byDomain.get(domain);
    if (ofDomain === undefined) {
      ofDomain = new Map();
      this.byDomain.set(domain, ofDomain);
    }
    ofDomain.set(entry.subKey, entry);
    addToIndex(this.byGateway, gatewayId, entry);
    addToIndex(this.byResource, resourceId, entry);
    this.lru.add(entry);
    this.count++;
    return entry;
  }
}

function addToIndex(index: Map<string, Set<Entry>>, id: string, entry: Entry): void {
  let set = index.get(id);
  if (set === undefined) {
    set = new Set();
    index.set(id, set);
  }
  set.add(entry);
}

function removeFromIndex(index: Map<string, Set<Entry>>, id: string, entry: Entry): void {
  const set = index.get(id);
  set?.delete(entry);
  if (set?.size === 0) index.delete(id);
}
