// The client daemon: the I/O shell around the DnsResourceNat state machine.
//
// Native events (DNS queries for resources, other queries seen, traffic
// waiting on a key, control messages, peers up and down) become inputs of the
// state machine; its effects become tunnel commands (send AssignedIps, gate,
// flush, discard). The machine is pure, so everything here is plumbing: no
// decision about the NAT setup is taken in this file.

import type { Server } from 'node:net';
import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';
import type { Tunnel as NativeTunnel, TunnelEvent } from '../../index.js';
import { LogLimiter } from '../common/log-limiter.js';
import { serveStatus } from '../daemon/status.js';
import native from '../native.js';
import { PROXY_V4, PROXY_V6 } from '../net/ip.js';
import { encodeControl, MessageType, parseControl } from '../protocol/control.js';
import { type ClientConfig, loadClientConfig } from './config.js';
import { DnsResourceNat, type Effect, type NatKey } from './dns-resource-nat.js';
import { backupPath, ManagedDns, repairAfterCrash } from './managed-dns.js';
import { nameservers, readResolvConf } from './resolv-conf.js';
import { loadState, type SavedState, writeState } from './state-file.js';

const PROXY_RANGES = [PROXY_V4.text, PROXY_V6.text];
/** How long new proxy-IP allocations may wait to be written to the state file together. */
const PERSIST_DELAY_MS = 250;
/** Least time between two writes of the state file: a flood of new names costs one write a second. */
const PERSIST_INTERVAL_MS = 1000;
/** Rejected proxy-IP table rows named in the log, at most (the rest are counted). */
const REJECTIONS_LOGGED = 10;
/**
 * Control packets a gateway may hand to JavaScript, per second and at once. A gateway answers each of our
 * `AssignedIps` once, and we send at most one per new name (a flood of names is one per name), so this is
 * far above an honest gateway's rate and bounds what a hostile one costs the event loop.
 */
const GATEWAY_CONTROL_PER_SECOND = 1_000;
const GATEWAY_CONTROL_BURST = 4_000;

export interface ClientStartOptions {
  logger?: Logger;
  /** Path of resolv.conf for `manageDns` and the default upstream; default the config's `resolvConf`. */
  resolvConfPath?: string;
  /** Override where the stub listens (tests); default the sentinels on port 53. */
  dnsListen?: string[];
  /** Serve `dnsnat status` on the config's socket; default true. */
  statusSocket?: boolean;
}

export interface ClientDomainStatus {
  gatewayId: string;
  domain: string;
  resourceId: string;
  state: string;
  sends: number;
  lastChangeMs: number;
  /** Why a `failed` entry failed: `timeout` (no answer) or `inactive` (the gateway said so). */
  failureReason?: string;
  /** The gateway's reason for `inactive` (`no-records`, `nxdomain`, `too-many-domains`, …). */
  failureDetail?: string;
}

export interface ClientStatus {
  role: 'client';
  domains: ClientDomainStatus[];
  peers: unknown[];
  counters: Record<string, number>;
}

export interface RunningClient {
  /** The configuration in force. */
  readonly config: ClientConfig;
  readonly nat: DnsResourceNat;
  status(): ClientStatus;
  /**
   * Applies the resources of a new configuration (the file again, or `next`).
   * Removed resources lose their entries and buffers at once; anything else
   * that changed needs a restart and makes the reload fail, keeping the old
   * configuration.
   */
  reload(next?: ClientConfig): { ok: true; removed: string[] } | { ok: false; error: string };
  stop(): Promise<void>;
}

/** The process's memory, as `dnsnat status` counters (bytes). */
function memoryCounters(): Record<string, number> {
  const m = process.memoryUsage();
  return {
    memoryRss: m.rss,
    memoryHeapUsed: m.heapUsed,
    memoryHeapTotal: m.heapTotal,
    memoryExternal: m.external,
  };
}

/** Fields a reload may not change: they shape the device, the keys or the peers. */
function restartOnlyChanges(a: ClientConfig, b: ClientConfig): string[] {
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  const fields = [
    'privateKey',
    'tunnel',
    'device',
    'gateways',
    'stateFile',
    'manageDns',
    'resolvConf',
    'statusSocket',
    'limits',
  ] as const;
  return fields.filter((f) => !same(a[f], b[f]));
}

const keyId = (k: NatKey) => `${k.gatewayId}\u0000${k.domain}\u0000${k.resourceId}`;

export async function startClient(
  configOrPath: string | ClientConfig,
  options: ClientStartOptions = {},
): Promise<RunningClient> {
  let config = typeof configOrPath === 'string' ? loadClientConfig(configOrPath) : configOrPath;
  const log = options.logger ?? pino({ name: 'dnsnat-client' });
  const resolvPath = options.resolvConfPath ?? config.resolvConf;
  const loaded = loadState(config.stateFile);
  const state: SavedState = loaded.state;
  if (loaded.corrupt) {
    log.warn(
      { stateFile: config.stateFile, problem: loaded.corrupt.problem, movedTo: loaded.corrupt.movedTo },
      'state file is corrupt; moved aside, starting fresh (proxy IPs may renumber)',
    );
  }
  // A crash may have left resolv.conf pointing at a stub that is gone: put
  // the original back before anything reads it.
  const recordFile = backupPath(config.stateFile, config.device);
  const repair = repairAfterCrash(recordFile, resolvPath);
  if (repair.kind === 'repaired') {
    log.warn({ path: repair.path, original: repair.original }, 'resolv.conf restored after a crash');
  } else if (repair.kind === 'left') {
    log.warn({ path: repair.path, why: repair.why }, 'resolv.conf backup not applied');
  }

  // The upstream is read before manageDns replaces resolv.conf, and
  // remembered, so a crash that left resolv.conf pointing at the sentinel
  // never makes the stub forward to itself.
  const originalResolv = readResolvConf(resolvPath);
  const upstream =
    config.upstreamDns ??
    (nameservers(originalResolv).length > 0 ? nameservers(originalResolv) : state.upstreamDns);
  if (!upstream || upstream.length === 0) {
    throw new Error(
      `${config.source}: upstreamDns: no upstream resolver configured and none in ${resolvPath}`,
    );
  }
  const upstreamDns: string[] = [...upstream];

  const nat = new DnsResourceNat({
    // `AssignedIps` no application waits for yet (a name was looked up, nothing sent to it) spend
    // `limits.setupsAheadPerSecond`, by default half the gateway's control budget, so that a page asking for
    // thousands of made-up names leaves the other half to names real connections wait on, which are never held
    // back (docs/decisions.md, "Client: names nobody connects to wait their turn").
    speculativeSendsPerSecond: config.limits.setupsAheadPerSecond,
    speculativeSendBurst: 2 * config.limits.setupsAheadPerSecond,
    // The packet path holds at most this many names; the machine's entries follow, even if a release event
    // was lost to a full event queue.
    maxEntries: config.limits.names,
  });
  const gatewayByKey = new Map(config.gateways.map((g) => [g.publicKey, g.id]));
  const keyByGateway = new Map(config.gateways.map((g) => [g.id, g.publicKey]));
  let stackOf = new Map(config.resources.map((r) => [r.id, r.ipStack]));
  const lastChange = new Map<string, number>();
  // Entries the machine drops (evicted, released, cleared) leave their times behind: once the map is twice the
  // machine's size they are swept out, an amortised constant cost per change, so it stays bounded by the
  // machine's own limit.
  function noteChange(key: NatKey, t: number): void {
    lastChange.set(keyId(key), t);
    if (lastChange.size <= 2 * nat.size() + 1024) return;
    for (const id of lastChange.keys()) {
      const [gatewayId = '', domain = '', resourceId = ''] = id.split('\u0000');
      if (nat.state({ gatewayId, domain, resourceId }) === undefined) lastChange.delete(id);
    }
  }
  // Lines a gateway or a flood of names can cause are limited per (message, gateway): 5 a second, burst 20.
  const logLimiter = new LogLimiter();
  function limitedLog(
    level: 'info' | 'warn' | 'error',
    subject: string,
    fields: Record<string, unknown>,
    msg: string,
  ): void {
    const suppressed = logLimiter.admit(msg, subject, now());
    if (suppressed === undefined) return;
    log[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }
  const counters = {
    controlDropped: 0,
    controlIgnored: 0,
    effectErrors: 0,
    stateWrites: 0,
    namesReleased: 0,
  };
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let tunnel: NativeTunnel | undefined;
  const now = () => performance.now();

  function apply(effect: Effect): void {
    const t = tunnel;
    if (!t) return;
    try {
      switch (effect.type) {
        case 'send-assigned-ips': {
          const peer = keyByGateway.get(effect.gatewayId);
          if (!peer) return;
          const body = encodeControl({
            type: MessageType.AssignedIps,
            body: {
              resource: effect.resourceId,
              domain: effect.domain,
              proxy_ips: effect.proxyIps,
              seq: effect.seq,
            },
          });
          t.sendControl(peer, MessageType.AssignedIps, body);
          log.debug(
            {
              gateway: effect.gatewayId,
              domain: effect.domain,
              resource: effect.resourceId,
              seq: effect.seq,
            },
            'AssignedIps sent',
          );
          return;
        }
        case 'gate':
          t.gate(effect.key.gatewayId, effect.key.domain, effect.key.resourceId, effect.mode);
          break;
        case 'flush':
          t.flush(effect.key.gatewayId, effect.key.domain, effect.key.resourceId);
          break;
        case 'discard':
          t.discard(effect.key.gatewayId, effect.key.domain, effect.key.resourceId);
          break;
      }
      noteChange(effect.key, now());
    } catch (e) {
      counters.effectErrors++;
      log.error({ err: e, effect: effect.type }, 'applying an effect failed');
    }
  }

  // The stub reports a repeated query for a domain to us only when something may have changed that domain's
  // entries since its last report (docs/decisions.md, "Client: repeated DNS queries reach JavaScript as a count"). It sees every such thing (events,
  // our commands) except an entry that failed by timeout without holding traffic: no command follows that, so
  // tell it with an empty clear.
  let timeoutsSeen = 0;
  function drain(): void {
    for (let e = nat.pollEffect(); e !== undefined; e = nat.pollEffect()) apply(e);
    const timeouts = nat.counters().timeouts;
    if (timeouts !== timeoutsSeen) {
      timeoutsSeen = timeouts;
      try {
        tunnel?.clearGates();
      } catch (e) {
        counters.effectErrors++;
        log.error({ err: e }, 'telling the stub about a timeout failed');
      }
    }
    if (timer) clearTimeout(timer);
    timer = undefined;
    const deadline = nat.pollTimeout();
    if (deadline !== undefined && !stopped) {
      timer = setTimeout(
        () => {
          nat.handleTimeout(now());
          drain();
        },
        Math.max(0, deadline - now()),
      );
    }
  }

  function proxyIpsOf(domain: string, resourceId: string): string[] | undefined {
    const ips = tunnel?.proxyIpsOf(domain);
    if (!ips) return undefined;
    const stack = stackOf.get(resourceId) ?? 'dual';
    return ips.filter((ip) => (ip.includes(':') ? stack !== 'ipv4' : stack !== 'ipv6'));
  }

  function persist(): void {
    if (persistTimer) clearTimeout(persistTimer);
    persistTimer = undefined;
    if (tunnel) state.proxyIpTable = tunnel.exportProxyIps();
    state.upstreamDns = upstreamDns;
    if (!config.stateFile) return;
    writeState(config.stateFile, state);
    counters.stateWrites++;
    lastPersist = now();
  }

  // A write exports and serialises the whole proxy-IP table, so writing it for every new name costs O(names)
  // each time, on the event loop, while the name's setup is in flight (DomainStatus waits behind it). New names
  // within PERSIST_DELAY_MS share one write, and writes are at least PERSIST_INTERVAL_MS apart, so a flood of
  // names costs one write a second. A crash loses only allocations younger than the last write; the same
  // names get new proxy IPs after the restart. stop() writes at once.
  let persistTimer: NodeJS.Timeout | undefined;
  let lastPersist = Number.NEGATIVE_INFINITY;
  function schedulePersist(): void {
    if (persistTimer || stopped) return;
    const delay = Math.max(PERSIST_DELAY_MS, lastPersist + PERSIST_INTERVAL_MS - now());
    persistTimer = setTimeout(() => {
      persistTimer = undefined;
      if (!stopped) persist();
    }, delay);
  }

  function onEvents(events: TunnelEvent[]): void {
    const t = now();
    let allocated = false;
    for (const e of events) {
      switch (e.kind) {
        case 'dns-query': {
          const domain = e.domain ?? '';
          nat.onDnsQuery(domain, e.matches ?? [], t);
          for (const m of e.matches ?? [])
            noteChange({ gatewayId: m.gatewayId, domain, resourceId: m.resourceId }, t);
          if (e.newlyAllocated) allocated = true;
          break;
        }
        case 'queries-seen':
          nat.onDnsQuery('', [], t);
          break;
        case 'pending-traffic': {
          const key = {
            gatewayId: e.gatewayId ?? '',
            domain: e.domain ?? '',
            resourceId: e.resourceId ?? '',
          };
          if (nat.state(key) === undefined) {
            // Traffic for a name the machine does not track (the client
            // restarted while an application kept using a proxy IP): set the
            // NAT up as if the name had just been queried.
            const proxyIps = proxyIpsOf(key.domain, key.resourceId);
            if (proxyIps) {
              nat.onDnsQuery(
                key.domain,
                [{ gatewayId: key.gatewayId, resourceId: key.resourceId, proxyIps }],
                t,
              );
              // An application is waiting: its send is never deferred.
              nat.onOutgoingPacket(key, t);
            }
          } else if (nat.onOutgoingPacket(key, t) === 'pass') {
            tunnel?.gate(key.gatewayId, key.domain, key.resourceId, 'pass');
            tunnel?.flush(key.gatewayId, key.domain, key.resourceId);
          }
          break;
        }
        case 'control': {
          const gatewayId = gatewayByKey.get(e.peer);
          if (!gatewayId) break;
          try {
            const m = parseControl(e.messageType ?? -1, e.body ?? '');
            if (m?.type === MessageType.DomainStatus) {
              nat.onDomainStatus(
                gatewayId,
                {
                  domain: m.body.domain,
                  resourceId: m.body.resource,
                  status: m.body.status,
                  seq: m.body.seq,
                  reason: m.body.reason,
                },
                t,
              );
              limitedLog(
                'info',
                gatewayId,
                {
                  gateway: gatewayId,
                  domain: m.body.domain,
                  resource: m.body.resource,
                  status: m.body.status,
                  reason: m.body.reason,
                },
                'DomainStatus',
              );
            } else if (m?.type === MessageType.Goodbye) {
              nat.onGatewayLost(gatewayId);
              tunnel?.clearGates(gatewayId, undefined);
              // It is restarting: the next packet should handshake at once
              // instead of waiting out WireGuard's timeouts on a dead session.
              tunnel?.resetPeer(e.peer);
              log.warn({ gateway: gatewayId }, 'gateway said goodbye');
            } else {
              counters.controlIgnored++;
            }
          } catch (err) {
            counters.controlDropped++;
            limitedLog(
              'warn',
              gatewayId,
              { gateway: gatewayId, err: (err as Error).message },
              'malformed control message dropped',
            );
          }
          break;
        }
        case 'peer-up':
          log.info({ gateway: gatewayByKey.get(e.peer) }, 'gateway handshake');
          break;
        case 'peer-down': {
          const gatewayId = gatewayByKey.get(e.peer);
          if (gatewayId) {
            nat.onGatewayLost(gatewayId);
            tunnel?.clearGates(gatewayId, undefined);
            log.warn({ gateway: gatewayId }, 'gateway lost');
          }
          break;
        }
        case 'proxy-ips-exhausted':
          limitedLog('error', '', { domain: e.domain, detail: e.body }, 'proxy IPs exhausted');
          break;
        case 'control-rate-limited':
          limitedLog(
            'warn',
            gatewayByKey.get(e.peer) ?? e.peer,
            { gateway: gatewayByKey.get(e.peer), dropped: e.count },
            'control packets over budget; dropped',
          );
          break;
        case 'proxy-ips-released':
          // Idle names, or the least recently used ones making room for new names: their entries go (the
          // packet path has forgotten their gates already), and the table must be written again.
          for (const domain of e.domains ?? []) {
            for (const key of nat.keysOf(domain)) lastChange.delete(keyId(key));
            nat.onDomainReleased(domain);
          }
          counters.namesReleased += e.domains?.length ?? 0;
          allocated = true;
          break;
      }
    }
    drain();
    if (allocated) schedulePersist();
  }

  tunnel = await native.Tunnel.create(
    {
      name: config.device,
      privateKey: config.privateKey,
      ipv4: config.tunnel.ipv4,
      ...(config.tunnel.ipv6 ? { ipv6: config.tunnel.ipv6 } : {}),
      client: {
        resources: config.resources.map((r) => ({
          id: r.id,
          pattern: r.pattern,
          gateway: r.gateway,
          ipStack: r.ipStack,
        })),
        upstream: upstreamDns,
        maxNames: config.limits.names,
        nameIdleMs: config.limits.nameIdleSeconds * 1000,
        ...(state.proxyIpTable ? { proxyIpTable: state.proxyIpTable } : {}),
        ...(options.dnsListen ? { dnsListen: options.dnsListen } : {}),
      },
    },
    (events) => onEvents(events),
  );
  for (const g of config.gateways) {
    tunnel.addPeer({
      publicKey: g.publicKey,
      endpoint: g.endpoint,
      allowedIps: [...PROXY_RANGES, ...g.tunnelIps],
      gatewayId: g.id,
      persistentKeepalive: 25,
      controlPerSecond: GATEWAY_CONTROL_PER_SECOND,
      controlBurst: GATEWAY_CONTROL_BURST,
    });
  }
  const rejected = tunnel.proxyIpTableRejections();
  if (rejected.length > 0) {
    log.warn(
      { stateFile: config.stateFile, rejected: rejected.length, first: rejected.slice(0, REJECTIONS_LOGGED) },
      'state file: proxy-IP table rows left out',
    );
  }
  persist();

  let managed: ManagedDns | undefined;
  if (config.manageDns) {
    // Only when resolv.conf already holds what we wrote and its record is gone does the original have to be
    // found elsewhere: in the state file of a version before records, else made up from the upstreams.
    managed = ManagedDns.takeOver(
      resolvPath,
      recordFile,
      () => loaded.legacyResolvConf ?? `${upstreamDns.map((ns) => `nameserver ${ns}`).join('\n')}\n`,
    );
    log.info({ path: resolvPath, original: managed.original.kind }, 'resolv.conf points at the dnsnat stub');
  }

  function status(): ClientStatus {
    const t = now();
    return {
      role: 'client',
      domains: nat.entries().map((e) => ({
        gatewayId: e.gatewayId,
        domain: e.domain,
        resourceId: e.resourceId,
        state: e.state,
        sends: e.totalSends,
        lastChangeMs: Math.round(t - (lastChange.get(keyId(e)) ?? t)),
        ...(e.failureReason ? { failureReason: e.failureReason } : {}),
        ...(e.failureDetail ? { failureDetail: e.failureDetail } : {}),
      })),
      peers: tunnel?.peers() ?? [],
      counters: {
        ...(tunnel?.counters() ?? {}),
        ...counters,
        trackedDomains: nat.size(),
        logLinesSuppressed: logLimiter.suppressed,
        ...memoryCounters(),
      },
    };
  }

  let statusServer: Server | undefined;
  if (options.statusSocket !== false) statusServer = await serveStatus(config.statusSocket, status);
  log.info(
    { device: config.device, gateways: config.gateways.length, resources: config.resources.length, upstream },
    'client started',
  );

  function reload(next?: ClientConfig): ReturnType<RunningClient['reload']> {
    let candidate: ClientConfig;
    try {
      candidate = next ?? (typeof configOrPath === 'string' ? loadClientConfig(configOrPath) : config);
    } catch (e) {
      log.error({ err: (e as Error).message }, 'reload rejected; the running configuration stays');
      return { ok: false, error: (e as Error).message };
    }
    const restart = restartOnlyChanges(config, candidate);
    if (restart.length > 0) {
      const error = `${candidate.source}: ${restart.join(', ')}: changes need a restart`;
      log.error({ fields: restart }, 'reload rejected; the running configuration stays');
      return { ok: false, error };
    }
    const kept = new Set(candidate.resources.map((r) => r.id));
    const removed = config.resources.filter((r) => !kept.has(r.id)).map((r) => r.id);
    tunnel?.setResources(
      candidate.resources.map((r) => ({
        id: r.id,
        pattern: r.pattern,
        gateway: r.gateway,
        ipStack: r.ipStack,
      })),
    );
    for (const id of removed) {
      nat.onResourceRemoved(id);
      tunnel?.clearGates(undefined, id);
    }
    config = candidate;
    stackOf = new Map(config.resources.map((r) => [r.id, r.ipStack]));
    drain();
    log.info({ resources: config.resources.length, removed }, 'configuration reloaded');
    return { ok: true, removed };
  }

  return {
    get config() {
      return config;
    },
    nat,
    status,
    reload,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      await new Promise<void>((resolve) => (statusServer ? statusServer.close(() => resolve()) : resolve()));
      try {
        persist();
      } finally {
        tunnel?.stop();
        tunnel = undefined;
        if (managed) {
          managed.restore();
          log.info({ path: resolvPath }, 'resolv.conf restored');
        }
      }
    },
  };
}
