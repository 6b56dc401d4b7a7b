// The gateway policy's vocabulary: what it takes in and hands out (resolutions, commands, counters,
// snapshots), and the state it keeps per domain, per client, per binding and per proxy IP. Shared by the
// policy's modules; no behaviour beyond a few one-line helpers.
import type { DeadlineSlot } from '../../common/deadline-queue.js';
import type { Family, Ip } from '../../net/ip.js';
import type { DomainStatus } from '../../protocol/control.js';
import type { GatewayClient, IpStack, ResourceConfig } from '../config.js';
import type { DestinationFilter } from '../destination-filter.js';

/** What a resolution found; structurally the resolver's `Resolution`. */
export interface ResolutionResult {
  readonly outcome: 'ok' | 'nxdomain' | 'no-records' | 'timeout' | 'error';
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
  readonly ttlSeconds: number;
  readonly error?: string;
}

export type DomainStatusValue = DomainStatus['status'];

export type LogLevel = 'debug' | 'info' | 'warn';

export type Command =
  | { type: 'add-peer'; clientId: string; publicKey: string; allowedIps: string[] }
  | { type: 'remove-peer'; clientId: string; publicKey: string }
  | {
      type: 'set-mapping';
      clientId: string;
      publicKey: string;
      proxyIp: string;
      realIp?: string;
      ttlMs?: number;
      ports?: string[];
    }
  | { type: 'remove-mapping'; clientId: string; publicKey: string; proxyIp: string }
  | { type: 'send-status'; clientId: string | undefined; publicKey: string; body: DomainStatus }
  | { type: 'resolve'; id: number; domain: string }
  | { type: 'log'; level: LogLevel; msg: string; fields: Record<string, unknown> };

export interface PolicyConfig {
  readonly resources: readonly ResourceConfig[];
  readonly clients: readonly GatewayClient[];
}

export interface PolicyOptions {
  /** Deadline of one resolution. Default 10,000 ms. */
  resolveTimeoutMs?: number;
  /** Resolutions at once. Default 1,000. */
  maxInFlight?: number;
  /** Domains waiting for a slot before resolutions are refused. Default 10,000. */
  maxQueued?: number;
  /** First self-healing backoff step. Default 1,000 ms. */
  healInitialMs?: number;
  /** Largest self-healing backoff step. Default 30,000 ms. */
  healMaxMs?: number;
  /** Upper bound on how long NXDOMAIN / no records is believed. Default 30,000 ms. */
  maxNegativeCacheMs?: number;
  /** (domain, resource) pairs one client holds; a new one beyond evicts the least recently used. Default 10,000. */
  maxBindingsPerClient?: number;
  /** Resolutions one client may have started (in flight or waiting); beyond, `resolver-busy`. Default 100. */
  maxPendingResolutionsPerClient?: number;
  /** A binding unused this long is dropped. Default one hour. */
  bindingIdleMs?: number;
  /**
   * How long the runtime's mapping of a proxy IP has gone unused (0 while a NAT session goes through it), or
   * null/undefined when it has none. Default: none known, so a binding is idle from its last `AssignedIps`.
   */
  mappingIdleMs?: (publicKey: string, proxyIp: string) => number | null | undefined;
  /** Which real addresses may be mapped. Default a filter that knows no gateway addresses yet. */
  destinations?: DestinationFilter;
}

/** Why an `AssignedIps` was refused (also the `reason` of the `inactive` reply). */
export type RejectReason =
  | 'unknown-client'
  | 'unknown-resource'
  | 'resource-not-allowed'
  | 'domain-not-matching'
  | 'proxy-ip-count'
  | 'proxy-ip-invalid'
  | 'proxy-ip-out-of-range'
  | 'proxy-ip-duplicate'
  | 'proxy-ip-stack'
  | 'resolver-busy';

export interface PolicyCounters {
  assignedIpsAccepted: number;
  assignedIpsDuplicate: number;
  assignedIpsRejected: Record<string, number>;
  controlMalformed: number;
  controlIgnored: number;
  goodbyes: number;
  renumberResets: number;
  bindingsExpired: number;
  /** Bindings dropped to make room for a new one (the client held its limit). */
  bindingsEvicted: number;
  destinationsRefused: number;
  resolutionsRefusedForClient: number;
  statusesSent: { active: number; inactive: number };
  unsolicitedStatuses: number;
  resolutionsStarted: number;
  resolutionsJoined: number;
  resolutionsQueued: number;
  resolutionsRefused: number;
  resolutionOutcomes: Record<string, number>;
  resolutionDeadlines: number;
  lateAnswers: number;
  cacheHits: number;
  negativeCacheHits: number;
  healResolutions: number;
  healSuppressed: number;
  refreshResolutions: number;
  unknownProxyEvents: number;
  mappingsSet: number;
  mappingsRemoved: number;
  policyRemovals: number;
}

export interface Answer {
  readonly ipv4: readonly Ip[];
  readonly ipv6: readonly Ip[];
  readonly expiresAt: number;
}

export interface DomainState {
  readonly domain: string;
  /** Clients with at least one binding for this domain. */
  readonly users: Set<string>;
  inflight: { id: number; startedAt: number; deadline: number } | undefined;
  /** The last answer with addresses; kept past its TTL only to keep working mappings on a timeout. */
  answer: Answer | undefined;
  negative: { reason: string; until: number } | undefined;
  /** Why the domain is not usable, for `inactive` replies. */
  lastFailure: string | undefined;
  healNextAt: number;
  healStepMs: number;
  /** The client whose request started the pending resolution (it counts against that client's budget). */
  requester: string | undefined;
}

export interface Binding {
  readonly key: string;
  readonly domain: string;
  readonly resourceId: string;
  /** Canonical, in ascending numeric order (IPv4 first). */
  readonly proxies: readonly Ip[];
  seq: number;
  /** An `AssignedIps` waits for its answer. */
  awaiting: boolean;
  lastStatus: DomainStatusValue | undefined;
  /** The last answer had addresses for this binding, all refused by the destination filter. */
  refused: boolean;
  /** When the client last sent an `AssignedIps` for it. */
  assertedAt: number;
  /** Its place in the expiry queue. */
  readonly expiry: DeadlineSlot<BindingRef>;
}

/** How the expiry queue names a binding: it may be gone (or replaced) by the time its deadline comes. */
export interface BindingRef {
  readonly clientId: string;
  readonly key: string;
}

export interface Installed {
  real: string | undefined;
  expiresAt: number | undefined;
  portsKey: string;
}

export interface ProxyEntry {
  readonly ip: Ip;
  readonly domain: string;
  readonly bindings: Set<string>;
  real: string | undefined;
  expiresAt: number | undefined;
  installed: Installed | undefined;
}

/** What the policy holds for one configured client: its bindings, proxy IPs and resolution share. */
export interface ClientBindings {
  cfg: GatewayClient;
  allowed: Set<string>;
  readonly bindings: Map<string, Binding>;
  readonly proxies: Map<string, ProxyEntry>;
  /** domain → binding keys */
  readonly domains: Map<string, Set<string>>;
  /** Resolutions this client started that are in flight or waiting. */
  pendingResolutions: number;
}

/** One (client, domain, resource) as `dnsnat status` shows it. */
export interface BindingSnapshot {
  client: string;
  domain: string;
  resource: string;
  status: DomainStatusValue | undefined;
  awaiting: boolean;
  seq: number;
  mappings: Array<{ proxyIp: string; realIp?: string }>;
}

export function normalizeDomain(domain: string): string {
  const lower = domain.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export const bindingKey = (domain: string, resourceId: string) => `${domain}\n${resourceId}`;

export function stackAllows(stack: IpStack, family: Family): boolean {
  return stack === 'dual' || (stack === 'ipv4' ? family === 4 : family === 6);
}

export function emptyCounters(): PolicyCounters {
  return {
    assignedIpsAccepted: 0,
    assignedIpsDuplicate: 0,
    assignedIpsRejected: {},
    controlMalformed: 0,
    controlIgnored: 0,
    goodbyes: 0,
    renumberResets: 0,
    bindingsExpired: 0,
    bindingsEvicted: 0,
    destinationsRefused: 0,
    resolutionsRefusedForClient: 0,
    statusesSent: { active: 0, inactive: 0 },
    unsolicitedStatuses: 0,
    resolutionsStarted: 0,
    resolutionsJoined: 0,
    resolutionsQueued: 0,
    resolutionsRefused: 0,
    resolutionOutcomes: {},
    resolutionDeadlines: 0,
    lateAnswers: 0,
    cacheHits: 0,
    negativeCacheHits: 0,
    healResolutions: 0,
    healSuppressed: 0,
    refreshResolutions: 0,
    unknownProxyEvents: 0,
    mappingsSet: 0,
    mappingsRemoved: 0,
    policyRemovals: 0,
  };
}

export const bump = (r: Record<string, number>, k: string) => {
  r[k] = (r[k] ?? 0) + 1;
};
