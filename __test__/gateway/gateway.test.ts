// The I/O shell with a fake tunnel and a fake resolver: events in, commands out in order, timers, metrics
// over HTTP, and atomic reloads (object, file change). No root, no devices.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { MappingOptions, PeerOptions, TunnelEvent, TunnelOptions } from '../../index.js';
import {
  type Gateway,
  type GatewayResolverLike,
  type GatewayTunnel,
  startGateway,
} from '../../ts/gateway/gateway.js';
import type { ResolutionResult } from '../../ts/gateway/policy.js';

/** What every client peer is given by default (gateway.yaml `limits`). */
const LIMITS = { controlPerSecond: 100, controlBurst: 200, maxSessions: 65_536 };
const GW_KEY = 'YOUxDD76EAbdkrEjgd0Y4py/j5O0TmxV+WJn4ToDDmc=';
const ALICE = 'j94dl3TnzOFymO2TF7GeJ2ev7qTp7QXCk5RbRIehKUA=';
const BOB = 'GORSExdMS2h85XY4zEnCx2eENvcJ4fgwJSDr+o+NdX4=';
const V4 = ['100.96.0.1', '100.96.0.2', '100.96.0.3', '100.96.0.4'];

function rawConfig(extra: Record<string, unknown> = {}) {
  return {
    privateKey: GW_KEY,
    tunnel: { ipv4: '100.64.0.1' },
    masquerade: false,
    resources: [{ id: 'web', pattern: '*.corp.example', ipStack: 'ipv4', ports: ['tcp/80'] }],
    clients: [
      { id: 'alice', publicKey: ALICE, tunnelIps: ['100.64.0.2'], resources: ['web'] },
      { id: 'bob', publicKey: BOB, tunnelIps: ['100.64.0.3'], resources: ['web'] },
    ],
    ...extra,
  };
}

class FakeTunnel implements GatewayTunnel {
  readonly publicKey = 'gw';
  readonly localPort = 51820;
  readonly name = 'fake0';
  calls: unknown[][] = [];
  options: TunnelOptions | undefined;
  emit: (events: TunnelEvent[]) => void = () => {};
  addPeer(peer: PeerOptions) {
    this.calls.push(['addPeer', peer]);
  }
  removePeer(k: string) {
    this.calls.push(['removePeer', k]);
    return true;
  }
  setMapping(k: string, p: string, m: MappingOptions) {
    this.calls.push(['setMapping', k, p, m]);
  }
  removeMapping(k: string, p: string) {
    this.calls.push(['removeMapping', k, p]);
    return true;
  }
  sendControl(k: string, t: number, body: string) {
    this.calls.push(['sendControl', k, t, JSON.parse(body)]);
  }
  counters() {
    return { control_rx: 3, 'nat drop': 1 };
  }
  stop() {
    this.calls.push(['stop']);
  }
  take(): unknown[][] {
    return this.calls.splice(0);
  }
}

class FakeResolver implements GatewayResolverLike {
  waiting = new Map<string, (r: ResolutionResult) => void>();
  asked: string[] = [];
  resolve(domain: string): Promise<ResolutionResult> {
    this.asked.push(domain);
    return new Promise((r) => this.waiting.set(domain, r));
  }
  answer(domain: string, r: ResolutionResult) {
    const f = this.waiting.get(domain);
    if (!f) throw new Error(`no resolution of ${domain} waiting`);
    this.waiting.delete(domain);
    f(r);
  }
}

const silent = pino({ level: 'silent' });

/** Polls `pred` every 20 ms for up to 5 s (file watching is timing-dependent on a loaded machine). */
async function until(pred: () => boolean): Promise<void> {
  const end = Date.now() + 5_000;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached within 5 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}
const tick = () => new Promise((r) => setTimeout(r, 0));

let running: Gateway | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function start(
  config: string | object = rawConfig(),
  opts: { logger?: pino.Logger; clock?: { t: number } } = {},
) {
  const tunnel = new FakeTunnel();
  const resolvers: FakeResolver[] = [];
  const settings: unknown[] = [];
  const gw = await startGateway(config, {
    logger: opts.logger ?? silent,
    createTunnel: async (o, cb) => {
      tunnel.options = o;
      tunnel.emit = cb;
      return tunnel;
    },
    createResolver: async (s) => {
      settings.push(s);
      const r = new FakeResolver();
      resolvers.push(r);
      return r;
    },
    watchIntervalMs: 50,
    ...(opts.clock ? { now: () => (opts.clock as { t: number }).t } : {}),
  });
  running = gw;
  return { gw, tunnel, resolvers, settings };
}

const assign = (domain: string, seq: number, ips = V4) =>
  ({
    kind: 'control',
    peer: ALICE,
    messageType: 0,
    body: JSON.stringify({ resource: 'web', domain, proxy_ips: ips, seq }),
  }) as TunnelEvent;

describe('startGateway (fake runtime)', () => {
  it('creates the tunnel from the config and adds every client as a NAT peer', async () => {
    const { tunnel, settings, gw } = await start();
    expect(tunnel.options).toEqual({
      name: 'dnsnat-gw',
      privateKey: GW_KEY,
      listen: '0.0.0.0:51820',
      ipv4: '100.64.0.1',
      routes: ['100.64.0.0/11'],
    });
    expect(settings).toEqual([{ timeoutMs: 10_000, maxInFlight: 2_000 }]);
    expect(tunnel.take()).toEqual([
      ['addPeer', { publicKey: ALICE, allowedIps: ['100.64.0.2/32'], nat: true, ...LIMITS }],
      ['addPeer', { publicKey: BOB, allowedIps: ['100.64.0.3/32'], nat: true, ...LIMITS }],
    ]);
    expect(gw.metricsAddress).toBeUndefined();
  });

  it('registers at once, resolves in the background, installs the mapping before telling the client', async () => {
    const { tunnel, resolvers } = await start();
    tunnel.take();
    tunnel.emit([assign('app.corp.example', 3)]);
    expect(tunnel.take()).toEqual(V4.map((p) => ['setMapping', ALICE, p, { ports: ['tcp/80'] }]));
    expect(resolvers[0]?.asked).toEqual(['app.corp.example']);
    resolvers[0]?.answer('app.corp.example', { outcome: 'ok', ipv4: ['10.0.0.1'], ipv6: [], ttlSeconds: 5 });
    await tick();
    const calls = tunnel.take();
    expect(calls.slice(0, 4)).toEqual(
      V4.map((p) => [
        'setMapping',
        ALICE,
        p,
        { realIp: '10.0.0.1', ttlMs: expect.any(Number), ports: ['tcp/80'] },
      ]),
    );
    expect(calls[4]).toEqual([
      'sendControl',
      ALICE,
      1,
      { resource: 'web', domain: 'app.corp.example', status: 'active', seq: 3 },
    ]);
  });

  it('answers a rejection at once, with nothing installed', async () => {
    const { tunnel, resolvers } = await start();
    tunnel.take();
    tunnel.emit([assign('app.other.example', 1)]);
    expect(tunnel.take()).toEqual([
      [
        'sendControl',
        ALICE,
        1,
        {
          resource: 'web',
          domain: 'app.other.example',
          status: 'inactive',
          seq: 1,
          reason: 'domain-not-matching',
        },
      ],
    ]);
    expect(resolvers[0]?.asked).toEqual([]);
  });

  it('a resolver that never answers is cut off by the policy deadline (timer from pollTimeout)', async () => {
    const clock = { t: 0 };
    const { tunnel } = await start(rawConfig({ resolution: { timeoutMs: 20 } }), { clock });
    tunnel.take();
    tunnel.emit([assign('slow.corp.example', 1)]);
    tunnel.take();
    clock.t = 10_000;
    await until(() => tunnel.calls.length > 0);
    expect(tunnel.take()).toEqual([
      [
        'sendControl',
        ALICE,
        1,
        expect.objectContaining({ domain: 'slow.corp.example', status: 'inactive', reason: 'timeout' }),
      ],
    ]);
  });

  it('logs every decision with client, resource, domain and reason', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const { tunnel } = await start(rawConfig(), { logger });
    tunnel.emit([assign('app.other.example', 1)]);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 40,
        msg: 'AssignedIps rejected',
        client: 'alice',
        resource: 'web',
        domain: 'app.other.example',
        reason: 'domain-not-matching',
      }),
    );
    tunnel.emit([{ kind: 'peer-up', peer: BOB }]);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'client connected', client: 'bob' }));
  });

  it('an event whose handling throws is logged and counted; the events after it are still handled', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const { gw, tunnel } = await start(rawConfig(), { logger });
    const original = gw.policy.onControl.bind(gw.policy);
    let calls = 0;
    gw.policy.onControl = (...args) => {
      if (calls++ === 0) throw new Error('boom');
      original(...args);
    };
    tunnel.emit([assign('app.other.example', 1), assign('app.other.example', 2)]);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 50, msg: 'handler failed; its input was dropped', kind: 'control' }),
    );
    // The second event of the same batch was handled: it was rejected and answered.
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'AssignedIps rejected' }));
    expect(gw.metrics()).toMatch(/^dnsnat_gateway_handler_errors_total 1$/m);
  });

  it('serves counters and the latency histogram as Prometheus text on the opt-in address', async () => {
    const { gw, tunnel, resolvers } = await start(rawConfig({ metrics: '127.0.0.1:0' }));
    tunnel.emit([assign('app.corp.example', 1), assign('app.other.example', 2)]);
    resolvers[0]?.answer('app.corp.example', { outcome: 'ok', ipv4: ['10.0.0.1'], ipv6: [], ttlSeconds: 5 });
    await tick();
    expect(gw.metricsAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const res = await fetch(`http://${gw.metricsAddress}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const text = await res.text();
    expect(text).toContain('dnsnat_gateway_assigned_ips_total{result="accepted"} 1');
    expect(text).toContain(
      'dnsnat_gateway_assigned_ips_total{result="rejected",reason="domain-not-matching"} 1',
    );
    expect(text).toContain('dnsnat_gateway_resolutions_total{outcome="ok"} 1');
    expect(text).toContain('# TYPE dnsnat_gateway_resolution_duration_seconds histogram');
    expect(text).toContain('dnsnat_gateway_resolution_duration_seconds_bucket{le="+Inf"} 1');
    expect(text).toContain('dnsnat_gateway_resolution_duration_seconds_count 1');
    expect(text).toContain('dnsnat_gateway_mappings 4');
    expect(text).toContain('dnsnat_tunnel_control_rx_total 3');
    expect(text).toContain('dnsnat_tunnel_nat_drop_total 1');
    expect((await fetch(`http://${gw.metricsAddress}/other`)).status).toBe(404);
  });

  it('reload: a bad config is rejected and the old one keeps running; a good one applies at once', async () => {
    const { gw, tunnel } = await start();
    tunnel.emit([assign('app.corp.example', 1)]);
    tunnel.take();
    const bad = await gw.reload({
      ...rawConfig(),
      clients: [{ id: 'alice', publicKey: 'x', tunnelIps: [], resources: [] }],
    });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(
      /gateway config: clients\[0\]\.publicKey: expected a base64 WireGuard key/,
    );
    const restart = await gw.reload({ ...rawConfig(), listen: '0.0.0.0:1' });
    expect(!restart.ok && restart.error).toMatch(/listen: changing this needs a restart/);
    expect(tunnel.take()).toEqual([]);
    expect(gw.config.clients).toHaveLength(2);

    const good = await gw.reload({ ...rawConfig(), clients: rawConfig().clients.slice(1) });
    expect(good).toEqual({ ok: true, changed: true });
    expect(tunnel.take()).toEqual([['removePeer', ALICE]]);
    expect(gw.config.clients.map((c) => c.id)).toEqual(['bob']);
    expect(gw.metrics()).toContain('dnsnat_gateway_config_reloads_total{result="rejected"} 2');
  });

  it('reload: new nameservers get a new resolver; the file is watched and re-read on change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dnsnat-gw-'));
    const file = join(dir, 'gateway.yaml');
    const yaml = (resources: string) => `privateKey: ${GW_KEY}
tunnel: { ipv4: 100.64.0.1 }
masquerade: false
resources:
${resources}
clients:
  - { id: alice, publicKey: ${ALICE}, tunnelIps: [100.64.0.2], resources: [web] }
`;
    writeFileSync(file, yaml('  - { id: web, pattern: "*.corp.example", ipStack: ipv4 }'));
    const { gw, tunnel, settings } = await start(file);
    tunnel.emit([assign('app.corp.example', 1)]);
    tunnel.take();
    // Let the watcher take its first look at the file before editing it.
    await new Promise((r) => setTimeout(r, 200));
    // Broken edit: rejected, nothing changes.
    writeFileSync(file, yaml('  - { id: web, pattern: "*.corp.*", ipStack: ipv4 }'));
    // (A write can be seen half-way, as an empty file: also rejected. Hence "at least one".)
    await until(() => /dnsnat_gateway_config_reloads_total\{result="rejected"\} [1-9]/.test(gw.metrics()));
    expect(tunnel.take()).toEqual([]);
    expect(gw.config.resources[0]?.pattern.text).toBe('*.corp.example');
    // The resource goes: its mappings go with it, and the client hears nothing (no status sent yet).
    writeFileSync(file, yaml('  - { id: web, pattern: "db.corp.example", ipStack: ipv4 }'));
    await until(() => tunnel.calls.length >= 4);
    expect(tunnel.take()).toEqual(V4.map((p) => ['removeMapping', ALICE, p]));
    const r = await gw.reload({
      privateKey: GW_KEY,
      tunnel: { ipv4: '100.64.0.1' },
      masquerade: false,
      nameservers: ['10.2.0.53'],
      resources: [],
      clients: [],
    });
    expect(r.ok).toBe(true);
    expect(settings).toHaveLength(2);
    expect(settings[1]).toEqual({ nameservers: ['10.2.0.53'], timeoutMs: 10_000, maxInFlight: 2_000 });
  });

  it('says which device and address failed when the tunnel cannot start', async () => {
    await expect(
      startGateway(rawConfig(), {
        logger: silent,
        createTunnel: async () => {
          throw new Error('Operation not permitted');
        },
        createResolver: async () => new FakeResolver(),
      }),
    ).rejects.toThrow(/^cannot start the tunnel on dnsnat-gw, 0\.0\.0\.0:51820: Operation not permitted/);
  });

  it('rejects a bad config at start with file, field and expectation', async () => {
    await expect(start({ ...rawConfig(), tunnel: { ipv4: 'x' } })).rejects.toThrow(
      'gateway config: tunnel.ipv4: expected an IPv4 address, got "x"',
    );
  });
});
