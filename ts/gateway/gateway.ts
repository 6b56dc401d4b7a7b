// The gateway's I/O shell (docs/architecture.md#the-gateways-policy, docs/gateway.md): a Tunnel with a TUN device, a Resolver, and the sans-IO
// `GatewayPolicy` between them. Everything that decides lives in the policy; this file only moves events
// in, runs the commands it gets back in order, arms one timer from `pollTimeout()`, and owns the things
// with side effects on the host: the masquerade rule, the metrics listener, the signal and file watchers.
//
// Ordering matters in one place: commands run in the order the policy emitted them, synchronously, so a
// mapping is installed before the `DomainStatus active` that makes the client flush its buffered packets.
//
// Reload (SIGHUP, a change of the file, or `reload()`) is atomic: the new file is parsed and validated as a
// whole, a new resolver is built if the nameservers changed, and only then is the policy switched. Any
// failure on the way leaves the running config untouched. Settings that only a restart can apply (keys,
// addresses, the device) make a reload fail rather than apply half of a file.

import { type StatWatcher, unwatchFile, watchFile } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import pino from 'pino';
import type { MappingOptions, PeerOptions, TunnelEvent, TunnelOptions } from '../../index.js';
import { LogLimiter } from '../common/log-limiter.js';
import native from '../native.js';
import { parseSocketAddress, TUNNEL_V4, TUNNEL_V6 } from '../net/ip.js';
import { encodeControl, MessageType } from '../protocol/control.js';
import { ConfigError, type GatewayConfig, loadGatewayConfig, parseGatewayConfig } from './config.js';
import { DestinationFilter } from './destination-filter.js';
import { gatewayMetricFamilies } from './gateway-metrics.js';
import { HostForwarding } from './host-forwarding.js';
import { renderPrometheus } from './metrics.js';
import { type BindingSnapshot, type Command, GatewayPolicy, type ResolutionResult } from './policy.js';
import { GatewayResolver } from './resolver.js';

/** What the gateway needs of a tunnel (the native `Tunnel`, or a fake in tests). */
export interface GatewayTunnel {
  readonly publicKey: string;
  readonly localPort: number;
  readonly name: string;
  addPeer(peer: PeerOptions): void;
  removePeer(publicKey: string): boolean;
  setMapping(publicKey: string, proxyIp: string, mapping: MappingOptions): void;
  removeMapping(publicKey: string, proxyIp: string): boolean;
  /** How long a mapping went unused (0 while a session uses it); null without one. Fakes may leave it out. */
  mappingIdleMs?(publicKey: string, proxyIp: string): number | null;
  sendControl(publicKey: string, messageType: number, body: string): void;
  counters(): Record<string, number>;
  stop(): void;
}

/** What the gateway needs of a resolver (`GatewayResolver`, or a fake in tests). */
export interface GatewayResolverLike {
  resolve(domain: string): Promise<ResolutionResult>;
}

export interface ResolverSettings {
  nameservers?: readonly string[];
  timeoutMs: number;
  maxInFlight: number;
}

export interface GatewayOptions {
  /** Where decisions are logged; default a pino logger on stdout named `dnsnat-gateway`. */
  logger?: pino.Logger;
  /** Reload on SIGHUP. Default true when the config is a file. */
  reloadOnSignal?: boolean;
  /** Reload when the file changes (polled every `watchIntervalMs`). Default true when the config is a file. */
  watchFile?: boolean;
  watchIntervalMs?: number;
  /** Tests: build the tunnel. Default the native `Tunnel.create`. */
  createTunnel?: (
    options: TunnelOptions,
    onEvents: (events: TunnelEvent[]) => void,
  ) => Promise<GatewayTunnel>;
  /** Tests: build a resolver. Default `GatewayResolver.create`. */
  createResolver?: (settings: ResolverSettings) => Promise<GatewayResolverLike>;
  /** Tests: the monotonic clock in ms. Default `performance.now`. */
  now?: () => number;
  /** Tests: set up forwarding and masquerading even when the config asks for it. Default true. */
  applyMasquerade?: boolean;
  /** Where the record of host changes lives (crash repair). Default `/run/dnsnat`. */
  hostRecordDir?: string;
}

export type ReloadResult = { ok: true; changed: boolean } | { ok: false; error: string };

export interface Gateway {
  /** The config in force. */
  readonly config: GatewayConfig;
  readonly publicKey: string;
  /** The UDP port the tunnel listens on. */
  readonly localPort: number;
  /** Where metrics are served, when enabled: `host:port` actually bound. */
  readonly metricsAddress: string | undefined;
  /** Re-reads the file (or applies `next`, a raw config object); keeps the old config on any error. */
  reload(next?: unknown): Promise<ReloadResult>;
  /** Prometheus text of every counter. */
  metrics(): string;
  snapshot(): BindingSnapshot[];
  readonly policy: GatewayPolicy;
  stop(): Promise<void>;
}

/** Fields that only a restart can change. */
const RESTART_ONLY = [
  'privateKey',
  'listen',
  'tunnel',
  'device',
  'masquerade',
  'metrics',
  'resolution',
  'limits',
] as const;

function loadConfig(source: string | object): GatewayConfig {
  return typeof source === 'string' ? loadGatewayConfig(source) : parseGatewayConfig(source);
}

function resolverSettings(c: GatewayConfig): ResolverSettings {
  return {
    ...(c.nameservers === undefined ? {} : { nameservers: c.nameservers }),
    timeoutMs: c.resolution.timeoutMs,
    // The policy enforces the limit; the resolver's own is a backstop for answers still running past the
    // policy's deadline.
    maxInFlight: c.resolution.maxInFlight * 2,
  };
}

/** The gateway's own addresses, on every interface: names resolving to them are refused. */
function gatewayAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address));
}

/**
 * Starts a gateway from a gateway.yaml path or a config object (the same shape). Rejects with a
 * `ConfigError` naming file, field and expectation, or with the reason the tunnel could not start.
 */
export async function startGateway(
  configPathOrObject: string | object,
  options: GatewayOptions = {},
): Promise<Gateway> {
  const logger = options.logger ?? pino({ name: 'dnsnat-gateway' });
  const now = options.now ?? (() => performance.now());
  const isFile = typeof configPathOrObject === 'string';
  let config = loadConfig(configPathOrObject);

  const createResolver =
    options.createResolver ??
    (async (s: ResolverSettings) =>
      GatewayResolver.create({
        ...(s.nameservers === undefined ? {} : { nameservers: s.nameservers }),
        timeoutMs: s.timeoutMs,
        maxInFlight: s.maxInFlight,
      }));
  const createTunnel =
    options.createTunnel ??
    ((o: TunnelOptions, cb: (events: TunnelEvent[]) => void) =>
      native.Tunnel.create(o, (events: TunnelEvent[]) => cb(events)) as Promise<GatewayTunnel>);

  const masquerade =
    config.masquerade && options.applyMasquerade !== false
      ? new HostForwarding({
          device: config.device,
          tunnelIpv4: config.tunnel.ipv4,
          ...(config.tunnel.ipv6 === undefined ? {} : { tunnelIpv6: config.tunnel.ipv6 }),
          ...(options.hostRecordDir === undefined ? {} : { recordDir: options.hostRecordDir }),
          onRepair: (what) => logger.warn({ device: config.device }, what),
        })
      : undefined;
  let resolver = await createResolver(resolverSettings(config));

  const shellCounters = { commandErrors: 0, handlerErrors: 0, reloadsOk: 0, reloadsRejected: 0 };
  const logLimiter = new LogLimiter();
  const destinations = new DestinationFilter();
  destinations.setGatewayAddresses(gatewayAddresses());
  // Lag of the event loop: what every client's setup waits on. p99 and max over the last full 10 s window
  // (or the current one, if worse), so a scrape sees a stall that just ended.
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  let lagWindow = { p99: 0, max: 0 };
  const lagTimer = setInterval(() => {
    lagWindow = { p99: lag.percentile(99) / 1e9, max: lag.max / 1e9 };
    lag.reset();
    // Addresses change rarely; checked with the same cadence.
    destinations.setGatewayAddresses(gatewayAddresses());
  }, 10_000);
  lagTimer.unref();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let policy: GatewayPolicy | undefined;
  const pending: TunnelEvent[] = [];

  // Events can arrive while the tunnel is being created; they wait until the policy exists.
  const onEvents = (events: TunnelEvent[]) => {
    if (stopped) return;
    if (!policy) {
      pending.push(...events);
      return;
    }
    handleEvents(events);
  };

  masquerade?.apply();
  let tunnel: GatewayTunnel;
  try {
    tunnel = await createTunnel(
      {
        name: config.device,
        privateKey: config.privateKey,
        listen: config.listen,
        ipv4: config.tunnel.ipv4,
        ...(config.tunnel.ipv6 === undefined ? {} : { ipv6: config.tunnel.ipv6 }),
        // Replies to clients go back into the device; every client address lies in these ranges (config).
        routes: [TUNNEL_V4.text, ...(config.tunnel.ipv6 === undefined ? [] : [TUNNEL_V6.text])],
      },
      onEvents,
    );
  } catch (e) {
    masquerade?.undo();
    clearInterval(lagTimer);
    lag.disable();
    const why = e instanceof Error ? e.message : String(e);
    const hint = process.getuid?.() === 0 ? '' : ' (a TUN device needs root or CAP_NET_ADMIN)';
    throw new Error(`cannot start the tunnel on ${config.device}, ${config.listen}: ${why}${hint}`, {
      cause: e,
    });
  }

  const clientOf = (key: string) => policy?.clientIdOf(key) ?? key;

  const run = (c: Command) => {
    switch (c.type) {
      case 'log': {
        const subject = typeof c.fields.client === 'string' ? c.fields.client : '';
        const suppressed = logLimiter.admit(c.msg, subject, now());
        if (suppressed === undefined) return;
        logger[c.level](suppressed > 0 ? { ...c.fields, suppressed } : c.fields, c.msg);
        return;
      }
      case 'resolve': {
        const r = resolver;
        const answered = (result: ResolutionResult) =>
          guarded('resolution', c.domain, () => {
            if (stopped || !policy) return;
            policy.onResolution(c.id, result, now());
            flush();
          });
        r.resolve(c.domain).then(answered, (e: unknown) =>
          answered({ outcome: 'error', ipv4: [], ipv6: [], ttlSeconds: 0, error: String(e) }),
        );
        return;
      }
      case 'add-peer':
        tunnel.addPeer({
          publicKey: c.publicKey,
          allowedIps: c.allowedIps,
          nat: true,
          controlPerSecond: config.limits.controlPerSecond,
          controlBurst: config.limits.controlBurst,
          maxSessions: config.limits.sessionsPerClient,
        });
        logger.info({ client: c.clientId, tunnelIps: c.allowedIps }, 'client peer added');
        return;
      case 'remove-peer':
        tunnel.removePeer(c.publicKey);
        logger.info({ client: c.clientId }, 'client peer removed');
        return;
      case 'set-mapping': {
        const m: MappingOptions = {};
        if (c.realIp !== undefined) m.realIp = c.realIp;
        if (c.ttlMs !== undefined) m.ttlMs = c.ttlMs;
        if (c.ports !== undefined) m.ports = c.ports;
        tunnel.setMapping(c.publicKey, c.proxyIp, m);
        logger.debug({ client: c.clientId, proxyIp: c.proxyIp, realIp: c.realIp ?? null }, 'mapping set');
        return;
      }
      case 'remove-mapping':
        tunnel.removeMapping(c.publicKey, c.proxyIp);
        logger.debug({ client: c.clientId, proxyIp: c.proxyIp }, 'mapping removed');
        return;
      case 'send-status':
        // A peer the policy does not know is not a peer of the tunnel either (it was removed while its
        // message was queued): there is no one to tell.
        if (c.clientId === undefined) return;
        tunnel.sendControl(
          c.publicKey,
          MessageType.DomainStatus,
          encodeControl({ type: MessageType.DomainStatus, body: c.body }),
        );
        return;
    }
  };

  function flush(): void {
    if (!policy || stopped) return;
    for (let c = policy.pollCommand(); c; c = policy.pollCommand()) {
      try {
        run(c);
      } catch (e) {
        shellCounters.commandErrors++;
        logger.error(
          { command: c.type, err: (e as Error).message, client: 'clientId' in c ? c.clientId : undefined },
          'command failed',
        );
      }
    }
    armTimer();
  }

  function armTimer(): void {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const at = policy?.pollTimeout();
    if (at === undefined || stopped) return;
    timer = setTimeout(
      () => {
        timer = undefined;
        guarded('timer', '', () => policy?.handleTimeout(now()));
        flush();
      },
      Math.max(0, Math.ceil(at - now())),
    );
    timer.unref();
  }

  /**
   * Runs one handler; what it throws is logged (bounded), counted and dropped. One bad event, answer or
   * timer (or a bug it triggers) must not take the daemon, or anyone else's work, down.
   */
  function guarded(kind: string, subject: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      shellCounters.handlerErrors++;
      const suppressed = logLimiter.admit('handler failed', kind, now());
      if (suppressed !== undefined) {
        logger.error(
          { kind, subject, err: (err as Error).stack ?? String(err), suppressed },
          'handler failed; its input was dropped',
        );
      }
    }
  }

  function handleEvents(events: TunnelEvent[]): void {
    const t = now();
    for (const e of events) guarded(e.kind, clientOf(e.peer), () => handleEvent(e, t));
    flush();
  }

  function handleEvent(e: TunnelEvent, t: number): void {
    const p = policy as GatewayPolicy;
    switch (e.kind) {
      case 'control':
        p.onControl(e.peer, e.messageType ?? -1, e.body ?? '', t);
        break;
      case 'resolve-unmapped':
        if (e.proxyIp) p.onResolveUnmapped(e.peer, e.proxyIp, t);
        break;
      case 'mapping-expired':
        if (e.proxyIp) p.onMappingExpired(e.peer, e.proxyIp, t);
        break;
      case 'control-rate-limited': {
        const client = clientOf(e.peer);
        const suppressed = logLimiter.admit('control packets over budget', client, t);
        if (suppressed !== undefined) {
          logger.warn(
            { client, dropped: e.count ?? 0, perSecond: config.limits.controlPerSecond },
            'control packets over budget; dropped',
          );
        }
        break;
      }
      case 'peer-up':
      case 'peer-down':
        logger.info(
          { client: clientOf(e.peer) },
          e.kind === 'peer-up' ? 'client connected' : 'client handshake lost',
        );
        break;
      default:
        logger.debug({ kind: e.kind, client: clientOf(e.peer) }, 'tunnel event ignored');
    }
  }

  policy = new GatewayPolicy(
    config,
    {
      // The resolver enforces the deadline and answers `timeout`; the policy's own deadline is a backstop
      // a little later, so a resolver that never answers cannot hold a slot forever.
      resolveTimeoutMs: config.resolution.timeoutMs + 500,
      maxInFlight: config.resolution.maxInFlight,
      maxQueued: config.resolution.maxQueued,
      maxBindingsPerClient: config.limits.bindingsPerClient,
      maxPendingResolutionsPerClient: config.limits.pendingResolutionsPerClient,
      bindingIdleMs: config.limits.bindingIdleSeconds * 1000,
      destinations,
      mappingIdleMs: (publicKey, proxyIp) => {
        try {
          return tunnel.mappingIdleMs?.(publicKey, proxyIp);
        } catch {
          return undefined; // the peer went away with the config: the binding goes with it
        }
      },
    },
    now(),
  );
  flush();
  if (pending.length > 0) handleEvents(pending.splice(0));

  // ---- metrics ----

  const metricsText = (): string => {
    let tunnelCounters: Record<string, number> = {};
    if (!stopped) {
      try {
        tunnelCounters = tunnel.counters();
      } catch {
        // stopped underneath us
      }
    }
    return renderPrometheus(
      gatewayMetricFamilies({
        policy: policy as GatewayPolicy,
        clients: config.clients,
        shell: shellCounters,
        logLinesSuppressed: logLimiter.suppressed,
        lag: {
          p99Seconds: Math.max(lagWindow.p99, lag.percentile(99) / 1e9),
          maxSeconds: Math.max(lagWindow.max, lag.max / 1e9),
        },
        tunnelCounters,
      }),
    );
  };

  let server: Server | undefined;
  let metricsAddress: string | undefined;
  let watcher: StatWatcher | undefined;
  let onSignal: (() => void) | undefined;
  const stopAll = async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    clearInterval(lagTimer);
    lag.disable();
    if (watcher && isFile) unwatchFile(configPathOrObject as string, onFileChange);
    if (onSignal) process.off('SIGHUP', onSignal);
    if (server) {
      const srv = server;
      // A scraper's keep-alive connection must not hold the stop up.
      const closed = new Promise<void>((r) => srv.close(() => r()));
      srv.closeAllConnections();
      await closed;
    }
    // Goodbye lets each connected client reset its WireGuard session with us
    // at once; after a restart it would otherwise wait out WireGuard's
    // keepalive and rekey timeouts (~15 s) on a session we no longer have.
    for (const c of config.clients) {
      try {
        tunnel.sendControl(
          c.publicKey,
          MessageType.Goodbye,
          encodeControl({ type: MessageType.Goodbye, body: {} }),
        );
      } catch {
        // a client we never heard from: nothing to tell
      }
    }
    try {
      tunnel.stop();
    } catch {
      // already stopped
    }
    masquerade?.undo();
  };

  if (config.metrics !== undefined) {
    const addr = parseSocketAddress(config.metrics) as { host: string; port: number };
    const srv = createServer((req, res) => {
      if (req.method === 'GET' && (req.url === '/metrics' || req.url === '/')) {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(metricsText());
      } else {
        res.writeHead(404).end();
      }
    });
    server = srv;
    try {
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(addr.port, addr.host, () => resolve());
      });
    } catch (e) {
      server = undefined;
      await stopAll();
      throw new Error(`metrics: cannot listen on ${config.metrics}: ${(e as Error).message}`);
    }
    const a = srv.address() as AddressInfo;
    metricsAddress = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    logger.info({ address: metricsAddress }, 'metrics listening');
  }

  // ---- reload ----

  let reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, changed: false });
  const doReload = async (next: unknown): Promise<ReloadResult> => {
    let fresh: GatewayConfig;
    try {
      fresh = next !== undefined ? parseGatewayConfig(next) : loadConfig(configPathOrObject);
      const restart = RESTART_ONLY.filter(
        (f) => JSON.stringify(fresh[f] ?? null) !== JSON.stringify(config[f] ?? null),
      );
      if (restart.length > 0) {
        throw new ConfigError([`${fresh.source}: ${restart.join(', ')}: changing this needs a restart`]);
      }
    } catch (e) {
      shellCounters.reloadsRejected++;
      const error = e instanceof Error ? e.message : String(e);
      logger.error({ error }, 'config reload rejected; the running config stays');
      return { ok: false, error };
    }
    const before = JSON.stringify(config.nameservers ?? null);
    if (JSON.stringify(fresh.nameservers ?? null) !== before) {
      try {
        resolver = await createResolver(resolverSettings(fresh));
      } catch (e) {
        shellCounters.reloadsRejected++;
        const error = `${fresh.source}: nameservers: ${(e as Error).message}`;
        logger.error({ error }, 'config reload rejected; the running config stays');
        return { ok: false, error };
      }
    }
    if (stopped) return { ok: false, error: 'gateway stopped' };
    config = fresh;
    shellCounters.reloadsOk++;
    (policy as GatewayPolicy).setConfig(fresh, now());
    flush();
    logger.info({ resources: fresh.resources.length, clients: fresh.clients.length }, 'config reloaded');
    return { ok: true, changed: true };
  };
  const reload = (next?: unknown): Promise<ReloadResult> => {
    // One reload at a time, in order.
    reloading = reloading.then(() => doReload(next));
    return reloading;
  };

  if (isFile && options.reloadOnSignal !== false) {
    onSignal = () => {
      logger.info('SIGHUP: reloading the config');
      void reload();
    };
    process.on('SIGHUP', onSignal);
  }

  const onFileChange = (cur: { mtimeMs: number }, prev: { mtimeMs: number }) => {
    if (cur.mtimeMs !== prev.mtimeMs) {
      logger.info({ file: configPathOrObject }, 'config file changed: reloading');
      void reload();
    }
  };
  if (isFile && options.watchFile !== false) {
    watcher = watchFile(configPathOrObject, { interval: options.watchIntervalMs ?? 1_000 }, onFileChange);
    watcher.unref();
  }

  logger.info(
    {
      publicKey: tunnel.publicKey,
      port: tunnel.localPort,
      device: tunnel.name,
      resources: config.resources.length,
      clients: config.clients.length,
    },
    'gateway started',
  );

  return {
    get config() {
      return config;
    },
    publicKey: tunnel.publicKey,
    localPort: tunnel.localPort,
    metricsAddress,
    reload,
    metrics: metricsText,
    snapshot: () => (policy as GatewayPolicy).snapshot(),
    policy: policy as GatewayPolicy,
    stop: async () => {
      if (stopped) return;
      await stopAll();
      logger.info('gateway stopped');
    },
  };
}
