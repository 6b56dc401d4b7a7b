// The gateway against one of its own clients turned hostile: `mallory` holds a
// valid key and may use the `web` resource, but drives a standard WireGuard peer
// (wireguard-go) with hand-made packets (fixtures/inject.py): control-packet
// floods, Goodbye/renumber loops, every UDP source port, tens of thousands of
// names, and names that resolve to the gateway's own or link-local addresses.
// Meanwhile the honest client `alice` (the real `dnsnat client`) keeps opening
// new connections to new names, and each must work. Root, wireguard-go, wg,
// python3, dnsmasq and curl.
//
//   c (alice, 198.18.0.2) ── 198.18.0.1 ┐
//   a (mallory, 198.18.3.2) ─ 198.18.3.1 ┤ g (dnsnat gateway) 198.18.2.1 ── s (198.18.2.2: dnsmasq, HTTP :8080)
//                                        └ 198.18.4.1 ── m (198.18.4.2; 169.254.169.254 on its loopback)
//
// The metadata address lives in its own namespace `m` rather than on the site:
// the site's HTTP server holds [::]:8080, which would answer for it and hide
// whether anything reached that address.
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import {
  type Attacker,
  attackerToolsAvailable,
  type InjectSummary,
  proxyBlock,
  startAttacker,
} from '../support/attacker.js';
import { JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';

const fixtures = join(__dirname, '..', 'fixtures');
const cli = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const run = canRunPrivileged('gateway attack suite') && attackerToolsAvailable('gateway attack suite');

const LIMITS = {
  controlPerSecond: 50,
  controlBurst: 100,
  bindingsPerClient: 1000,
  bindingIdleSeconds: 5,
  pendingResolutionsPerClient: 20,
  sessionsPerClient: 65536,
};
const MiB = 1024 * 1024;
/** What any attack may add to the gateway's resident memory. */
const RSS_GROWTH_LIMIT = 64 * MiB;
/** p99 event-loop lag the gateway must keep under attack. */
const LAG_LIMIT_S = 0.1;
const METRICS_URL = 'http://127.0.0.1:9109/metrics';

type Domain = { domain: string; state: string; failureReason?: string; failureDetail?: string };
type ClientStatus = { role: string; domains: Domain[]; counters: Record<string, number> };
type GatewayStatus = {
  role: string;
  mappings: Array<{
    clientId: string;
    domain: string;
    status: string;
    realIps: string[];
    proxyIps: string[];
  }>;
  counters: Record<string, number>;
};

interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `ip netns exec ns cmd args`, without blocking the event loop (the samplers run during a flood). */
function execIn(ns: string, cmd: string, args: string[], timeoutMs = 15_000): Promise<ExecResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, cmd, ...args],
      { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 256 * MiB },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr, ms: performance.now() - t0 });
      },
    );
  });
}

/** Sum of the samples of `name` whose labels include `labels`; undefined when there is none. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).some(([k, v]) => have.get(k) !== v)) continue;
    sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

/**
 * The gateway daemon (fixtures/daemon.cjs), keeping only the last lines of its log: a flood can make it log
 * thousands of lines a second, and a reader that parses them all would compete with it for the CPU (and a
 * slow reader blocks pino's synchronous writes, which would show up as the gateway's own lag).
 */
class DaemonTail {
  readonly tail: string[] = [];
  lineCount = 0;
  pid: number | undefined;
  exitCode: number | null | undefined;
  readonly exited: Promise<void>;
  private rest = '';
  private onPid: Array<() => void> = [];

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on('data', (d: Buffer) => {
      const parts = (this.rest + d.toString()).split('\n');
      this.rest = parts.pop() ?? '';
      for (const line of parts) this.line(line);
    });
    child.stderr.on('data', (d: Buffer) => this.line(d.toString().trim()));
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
  }

  private line(text: string): void {
    this.lineCount++;
    this.tail.push(text);
    if (this.tail.length > 300) this.tail.splice(0, 100);
    if (this.pid === undefined && text.startsWith('{"pid"')) {
      this.pid = (JSON.parse(text) as { pid: number }).pid;
      for (const f of this.onPid.splice(0)) f();
    }
    if (text.startsWith('{"exited"')) this.exitCode = (JSON.parse(text) as { exited: number | null }).exited;
  }

  waitPid(timeoutMs = 10_000): Promise<number> {
    if (this.pid !== undefined) return Promise.resolve(this.pid);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`no pid from daemon.cjs: ${this.tail.join('\n')}`)),
        timeoutMs,
      );
      this.onPid.push(() => {
        clearTimeout(t);
        resolve(this.pid as number);
      });
    });
  }
}

async function until<T>(fn: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

interface Probe {
  url: string;
  ok: boolean;
  ms: number;
  out: string;
}
interface Sample {
  at: number;
  rss: number;
  lagP99: number | undefined;
  lagMax: number | undefined;
  metricsMs: number;
  metricsOk: boolean;
  bindings?: number | undefined;
}

describe.runIf(run)('the gateway under attack from one of its clients', () => {
  const lab = new Lab('atk');
  let c = '';
  let g = '';
  let s = '';
  let a = '';
  let m = '';
  let dir = '';
  let netnsEtc = '';
  let gateway: DaemonTail | undefined;
  let attacker: Attacker | undefined;
  const extra: ChildProcessWithoutNullStreams[] = [];
  const kGateway = native.generateKeypair();
  const kAlice = native.generateKeypair();
  const kMallory = native.generateKeypair();
  let honest = 0;

  const mallory = (): Attacker => attacker as Attacker;
  const gatewayPid = (): number => gateway?.pid as number;

  function rss(): number {
    const text = readFileSync(`/proc/${gatewayPid()}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(text);
    return kb ? Number(kb[1]) * 1024 : Number.NaN;
  }

  async function metrics(): Promise<{ text: string; ms: number; ok: boolean }> {
    const r = await execIn(g, 'curl', ['-s', '--max-time', '5', METRICS_URL], 10_000);
    return { text: r.stdout, ms: r.ms, ok: r.code === 0 && r.stdout.includes('dnsnat_') };
  }

  async function gatewayStatus(): Promise<GatewayStatus | undefined> {
    const r = await execIn(g, process.execPath, [
      cli,
      'status',
      '--json',
      '--socket',
      join(dir, 'gateway.sock'),
    ]);
    if (r.code !== 0) return undefined;
    try {
      return JSON.parse(r.stdout) as GatewayStatus;
    } catch {
      return undefined;
    }
  }

  /** Bindings the gateway holds for a client: the per-client gauge when there is one, else `dnsnat status`. */
  async function bindingsOf(client: string, text?: string): Promise<number | undefined> {
    const fromMetric = text === undefined ? undefined : metric(text, 'dnsnat_gateway_bindings', { client });
    if (fromMetric !== undefined) return fromMetric;
    const st = await gatewayStatus();
    return st?.mappings.filter((x) => x.clientId === client).length;
  }

  const clientStatus = (): ClientStatus =>
    JSON.parse(
      lab.exec(c, process.execPath, [cli, 'status', '--json', '--socket', join(dir, 'client.sock')]),
    ) as ClientStatus;
  const domainOf = (name: string) => clientStatus().domains.find((d) => d.domain === name);
  const resolve4 = (name: string): string[] | string =>
    JSON.parse(
      lab.exec(c, process.execPath, [
        '-e',
        `const {Resolver}=require('node:dns').promises;const r=new Resolver({timeout:2000,tries:2});r.setServers(['100.100.111.1']);` +
          `r.resolve4(${JSON.stringify(name)}).then(a=>console.log(JSON.stringify(a)),e=>console.log(JSON.stringify(e.code)))`,
      ]),
    ) as string[] | string;

  /** One honest client action: a never-seen name, then the long-known one; each a new TCP connection. */
  async function probe(): Promise<Probe[]> {
    const out: Probe[] = [];
    for (const url of [`http://h${honest++}.corp.example:8080/`, 'http://app.corp.example:8080/']) {
      const r = await execIn(c, 'curl', ['-s', '-4', '--max-time', '10', url], 15_000);
      out.push({
        url,
        ok: r.stdout.startsWith('hello from site'),
        ms: Math.round(r.ms),
        out: `${r.stdout.slice(0, 60)} exit=${r.code}`,
      });
    }
    return out;
  }

  async function sample(withBindings = false): Promise<Sample> {
    const r = rss();
    const mt = await metrics();
    const s: Sample = {
      at: Date.now(),
      rss: r,
      lagP99: metric(mt.text, 'dnsnat_gateway_event_loop_lag_p99_seconds'),
      lagMax: metric(mt.text, 'dnsnat_gateway_event_loop_lag_max_seconds'),
      metricsMs: Math.round(mt.ms),
      metricsOk: mt.ok,
    };
    if (withBindings) s.bindings = await bindingsOf('mallory', mt.text);
    return s;
  }

  /** Runs `work` while the honest client probes and the gateway is sampled every `everyMs`. */
  async function watch<T>(
    work: Promise<T>,
    opts: { everyMs?: number; bindings?: boolean } = {},
  ): Promise<{ result: T; probes: Probe[]; samples: Sample[] }> {
    let done = false;
    const settled = work.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    const probes: Array<Promise<Probe[]>> = [];
    const samples: Array<Promise<Sample>> = [];
    while (!done) {
      probes.push(probe());
      samples.push(sample(opts.bindings));
      await Promise.race([sleep(opts.everyMs ?? 2000), settled]);
    }
    const result = await work;
    return { result, probes: (await Promise.all(probes)).flat(), samples: await Promise.all(samples) };
  }

  const delta = (before: string, after: string, name: string, labels: Record<string, string> = {}) =>
    (metric(after, name, labels) ?? Number.NaN) - (metric(before, name, labels) ?? 0);

  const maxOf = (xs: Array<number | undefined>): number | undefined => {
    const defined = xs.filter((x): x is number => x !== undefined && !Number.isNaN(x));
    return defined.length === 0 ? undefined : Math.max(...defined);
  };

  /** The checks every flood shares: honest traffic unharmed, memory and event-loop lag bounded. */
  function expectGatewayHeld(what: string, rss0: number, probes: Probe[], samples: Sample[]): void {
    const failed = probes.filter((p) => !p.ok);
    expect.soft(probes.length, `${what}: honest probes ran`).toBeGreaterThan(0);
    expect.soft(failed, `${what}: honest connections that failed`).toEqual([]);
    const growth = (maxOf(samples.map((x) => x.rss)) ?? Number.NaN) - rss0;
    expect.soft(growth, `${what}: gateway RSS growth (bytes)`).toBeLessThan(RSS_GROWTH_LIMIT);
    const lag = maxOf(samples.map((x) => x.lagP99));
    expect.soft(lag, `${what}: dnsnat_gateway_event_loop_lag_p99_seconds is exported`).toBeDefined();
    expect.soft(lag ?? Number.NaN, `${what}: event-loop lag p99 (s)`).toBeLessThan(LAG_LIMIT_S);
  }

  function report(what: string, fields: Record<string, unknown>): void {
    console.log(`[gateway-attacks] ${what}: ${JSON.stringify(fields)}`);
  }

  function summarise(probes: Probe[], samples: Sample[], rss0: number): Record<string, unknown> {
    return {
      probes: probes.length,
      failedProbes: probes.filter((p) => !p.ok).slice(0, 5),
      probeMsMax: maxOf(probes.map((p) => p.ms)),
      rssBeforeMiB: +(rss0 / MiB).toFixed(1),
      rssMaxMiB: +((maxOf(samples.map((x) => x.rss)) ?? 0) / MiB).toFixed(1),
      lagP99: samples.map((x) => x.lagP99),
      lagMax: maxOf(samples.map((x) => x.lagMax)),
      metricsMsMax: maxOf(samples.map((x) => x.metricsMs)),
      metricsFailed: samples.filter((x) => !x.metricsOk).length,
    };
  }

  function gatewayYaml(): string {
    const l = LIMITS;
    return [
      `privateKey: ${kGateway.privateKey}`,
      'listen: "0.0.0.0:51820"',
      'tunnel: { ipv4: 100.64.0.1, ipv6: "fd00:2021:1111::1" }',
      'nameservers: [198.18.2.2]',
      'masquerade: true',
      'metrics: "127.0.0.1:9109"',
      `limits: { controlPerSecond: ${l.controlPerSecond}, controlBurst: ${l.controlBurst}, bindingsPerClient: ${l.bindingsPerClient}, ` +
        `bindingIdleSeconds: ${l.bindingIdleSeconds}, pendingResolutionsPerClient: ${l.pendingResolutionsPerClient}, ` +
        `sessionsPerClient: ${l.sessionsPerClient} }`,
      'resources:',
      '  - { id: web, pattern: "*.corp.example", ipStack: dual }',
      'clients:',
      `  - { id: alice, publicKey: ${kAlice.publicKey}, tunnelIps: [100.64.0.2, "fd00:2021:1111::2"], resources: [web] }`,
      `  - { id: mallory, publicKey: ${kMallory.publicKey}, tunnelIps: [100.64.0.3], resources: [web] }`,
      '',
    ].join('\n');
  }

  /** Starts `dnsnat gateway`; resolves once its status socket answers, or with the exit if it stopped. */
  async function startGateway(): Promise<{ ok: boolean; tail: string }> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        g,
        process.execPath,
        join(fixtures, 'daemon.cjs'),
        JSON.stringify({
          args: ['gateway', '-c', join(dir, 'gateway.yaml'), '-s', join(dir, 'gateway.sock')],
        }),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    extra.push(child);
    const gw = new DaemonTail(child);
    gateway = gw;
    await gw.waitPid();
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      if (gw.exitCode !== undefined || child.exitCode !== null) break;
      const st = await gatewayStatus();
      if (st?.role === 'gateway') return { ok: true, tail: '' };
      await sleep(200);
    }
    await Promise.race([gw.exited, sleep(2000)]);
    return { ok: false, tail: gw.tail.join('\n') };
  }

  /** A TCP and UDP listener in `ns` that prints each connection or datagram as a JSON line. */
  function listener(ns: string, host: string, port: number): JsonLineProcess {
    const code =
      "const net=require('node:net'),dgram=require('node:dgram');const host=process.argv[1],port=Number(process.argv[2]);" +
      "const out=(o)=>process.stdout.write(JSON.stringify(o)+'\\n');" +
      "const t=net.createServer((s)=>{out({tcp:s.remoteAddress,host});s.on('error',()=>{});s.end('HTTP/1.1 200 OK\\r\\ncontent-length: 9\\r\\nconnection: close\\r\\n\\r\\nlistener\\n')});" +
      "const u=dgram.createSocket(host.includes(':')?'udp6':'udp4');u.on('message',(m,r)=>out({udp:r.address,host}));" +
      't.listen(port,host,()=>u.bind(port,host,()=>out({ready:true,host})));';
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code, host, String(port)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    extra.push(child);
    return new JsonLineProcess(child);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dnsnat-attacks-'));
    c = lab.netns('c');
    g = lab.netns('g');
    s = lab.netns('s');
    a = lab.netns('a');
    m = lab.netns('m');
    lab.link(c, ['198.18.0.2/24'], g, ['198.18.0.1/24']);
    lab.link(a, ['198.18.3.2/24'], g, ['198.18.3.1/24']);
    lab.link(g, ['198.18.2.1/24', '2001:db8:2::1/64'], s, ['198.18.2.2/24', '2001:db8:2::2/64']);
    lab.link(g, ['198.18.4.1/24'], m, ['198.18.4.2/24']);
    lab.exec(s, 'ip', ['route', 'add', 'default', 'via', '198.18.2.1']);
    lab.exec(s, 'ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:2::1']);
    // On loopback: not every kernel has the dummy device type.
    lab.exec(m, 'ip', ['addr', 'add', '169.254.169.254/32', 'dev', 'lo']);
    lab.exec(m, 'ip', ['route', 'add', 'default', 'via', '198.18.4.1']);
    lab.exec(g, 'ip', ['route', 'add', '169.254.169.254/32', 'via', '198.18.4.2']);
    // The honest client reaches its upstream resolver (dnsmasq at the site) directly.
    lab.exec(c, 'ip', ['route', 'add', '198.18.2.0/24', 'via', '198.18.0.1']);

    const site = lab.node(s, join(fixtures, 'site-node.cjs'), {});
    await site.waitFor((l) => l.ready === true, 15_000, 'site');
    lab.exec(s, 'dnsmasq', [
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      '--listen-address=198.18.2.2',
      `--pid-file=${join(dir, 'dnsmasq.pid')}`,
      '--cache-size=10000',
      '--dns-forward-max=5000',
      '--host-record=app.corp.example,198.18.2.2,2001:db8:2::2',
      // Every other name of the resource is the site, so each name an attacker registers costs a real
      // resolution; these three point where a gateway must never send a client.
      '--address=/corp.example/198.18.2.2',
      '--address=/meta.corp.example/169.254.169.254',
      '--address=/loop.corp.example/127.0.0.1',
      '--address=/self.corp.example/198.18.2.1',
    ]);

    writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml());
    writeFileSync(
      join(dir, 'client.yaml'),
      [
        `privateKey: ${kAlice.privateKey}`,
        'tunnel: { ipv4: 100.64.0.2, ipv6: "fd00:2021:1111::2" }',
        'upstreamDns: [198.18.2.2]',
        `statusSocket: ${join(dir, 'client.sock')}`,
        'gateways:',
        `  - { id: gw1, endpoint: "198.18.0.1:51820", publicKey: ${kGateway.publicKey} }`,
        'resources:',
        '  - { id: web, pattern: "*.corp.example", gateway: gw1, ipStack: dual }',
        '',
      ].join('\n'),
    );
    netnsEtc = join('/etc/netns', c);
    mkdirSync(netnsEtc, { recursive: true });
    writeFileSync(join(netnsEtc, 'resolv.conf'), 'nameserver 100.100.111.1\n');

    const started = await startGateway();
    if (!started.ok) throw new Error(`the gateway did not start:\n${started.tail}`);

    lab.node(c, join(fixtures, 'daemon.cjs'), { args: ['client', '-c', join(dir, 'client.yaml')] });
    await until(
      () => {
        try {
          return clientStatus().role === 'client';
        } catch {
          return false;
        }
      },
      15_000,
      'the client daemon',
    );

    attacker = await startAttacker(lab, a, {
      privateKey: kMallory.privateKey,
      gatewayPublicKey: kGateway.publicKey,
      endpoint: '198.18.3.1:51820',
      tunnelIp: '100.64.0.3',
    });

    // The honest path works before anything else happens.
    const first = await probe();
    if (!first.every((p) => p.ok)) throw new Error(`honest client does not work: ${JSON.stringify(first)}`);
  }, 90_000);

  afterAll(() => {
    attacker?.stop();
    for (const child of extra) if (child.exitCode === null) child.kill('SIGKILL');
    lab.cleanup();
    if (netnsEtc) rmSync(netnsEtc, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a control-packet flood (one allowed name, then garbage) is rate-limited per client; honest traffic and the event loop are unaffected', async () => {
    const rss0 = rss();
    const before = (await metrics()).text;
    const tx0 = mallory().transfer().tx;
    const flood = (async (): Promise<InjectSummary[]> => [
      await mallory().inject({
        cmd: 'control',
        mode: 'flood',
        kind: 'assigned',
        domain: 'flood.corp.example',
        block: 0,
        seconds: 15,
      }),
      await mallory().inject({ cmd: 'control', mode: 'flood', kind: 'garbage', seconds: 15 }),
    ])();
    const { result, probes, samples } = await watch(flood);
    await sleep(1000);
    samples.push(await sample());
    const after = (await metrics()).text;
    const received = delta(before, after, 'dnsnat_tunnel_udp_rx_datagrams_total');
    const rateLimited = delta(before, after, 'dnsnat_tunnel_drop_control_rate_limited_total');
    report('control flood', {
      injected: result,
      wgTxBytes: mallory().transfer().tx - tx0,
      gatewayReceived: received,
      controlRx: delta(before, after, 'dnsnat_tunnel_control_rx_total'),
      rateLimited,
      malformed: delta(before, after, 'dnsnat_gateway_control_malformed_total'),
      handlerErrors: delta(before, after, 'dnsnat_gateway_handler_errors_total'),
      gatewayLogLines: gateway?.lineCount,
      ...summarise(probes, samples, rss0),
    });
    // The harness: the flood went through wireguard-go and reached the gateway.
    expect(result.every((r) => r.sent > 10_000)).toBe(true);
    expect(received, 'datagrams the gateway received during the flood').toBeGreaterThan(10_000);
    expectGatewayHeld('control flood', rss0, probes, samples);
    expect.soft(rateLimited, 'dnsnat_tunnel_drop_control_rate_limited_total grew').toBeGreaterThan(0);
    expect
      .soft(delta(before, after, 'dnsnat_gateway_handler_errors_total'), 'handler errors during the flood')
      .toBe(0);
  }, 120_000);

  it('a Goodbye/renumber loop after 500 names leaves the honest client flowing', async () => {
    // Refill the bucket, then register at a rate the limit lets through.
    await sleep(2500);
    const reg = await mallory().inject({
      cmd: 'control',
      mode: 'names',
      count: 500,
      prefix: 'r',
      suffix: 'corp.example',
      base: 1000,
      rate: 45,
      seconds: 20,
    });
    const registered = await bindingsOf('mallory', (await metrics()).text);
    const rss0 = rss();
    const before = (await metrics()).text;
    const app = resolve4('app.corp.example');
    expect(Array.isArray(app), `app.corp.example resolves at the stub: ${JSON.stringify(app)}`).toBe(true);
    const ping = execIn(
      c,
      'ping',
      ['-c', '75', '-i', '0.2', '-W', '1', (app as string[])[0] as string],
      40_000,
    );
    const loop = mallory().inject({
      cmd: 'control',
      mode: 'renumber',
      names: 500,
      perRound: 20,
      prefix: 'r',
      suffix: 'corp.example',
      base: 1000,
      seconds: 15,
    });
    const { result, probes, samples } = await watch(loop);
    const pinged = await ping;
    await sleep(1000);
    samples.push(await sample());
    const after = (await metrics()).text;
    const receivedPings = Number(/(\d+) received/.exec(pinged.stdout)?.[1] ?? 0);
    report('goodbye/renumber', {
      registration: reg,
      malloryBindingsAfterRegistration: registered,
      injected: result,
      gatewayReceived: delta(before, after, 'dnsnat_tunnel_udp_rx_datagrams_total'),
      rateLimited: delta(before, after, 'dnsnat_tunnel_drop_control_rate_limited_total'),
      renumberResets: delta(before, after, 'dnsnat_gateway_renumber_resets_total'),
      handlerErrors: delta(before, after, 'dnsnat_gateway_handler_errors_total'),
      pings: `${receivedPings}/75`,
      ...summarise(probes, samples, rss0),
    });
    expect(reg.sent).toBe(500);
    expect(result.sent, 'packets of the loop').toBeGreaterThan(10_000);
    expect(delta(before, after, 'dnsnat_tunnel_udp_rx_datagrams_total')).toBeGreaterThan(10_000);
    expectGatewayHeld('goodbye/renumber', rss0, probes, samples);
    expect.soft(receivedPings, 'pings answered of 75 during the loop').toBeGreaterThanOrEqual(68);
    expect
      .soft(delta(before, after, 'dnsnat_gateway_handler_errors_total'), 'handler errors during the loop')
      .toBe(0);
  }, 120_000);

  it('names that resolve to link-local, loopback or the gateway itself are refused, and nothing reaches them', async () => {
    const targets = [
      listener(g, '127.0.0.1', 8080),
      listener(g, '198.18.2.1', 8080),
      listener(m, '169.254.169.254', 8080),
    ];
    for (const l of targets) await l.waitFor((x) => x.ready === true, 10_000, 'listener');
    // The harness: each listener is reachable from the gateway's namespace, so silence below means refusal.
    type Heard = { tcp?: string; udp?: string; host?: string };
    for (const [i, host] of ['127.0.0.1', '198.18.2.1', '169.254.169.254'].entries()) {
      expect(lab.exec(g, 'curl', ['-s', '--max-time', '3', `http://${host}:8080/`])).toBe('listener\n');
      await targets[i]?.waitFor<Heard>((x) => x.tcp !== undefined, 5000, `${host} heard the check`);
    }
    const baseline = targets.map((l) => l.lines.length);
    const reachedSince = () =>
      targets.flatMap((l, i) => (l.lines.slice(baseline[i]) as Heard[]).filter((x) => x.tcp ?? x.udp));
    const before = (await metrics()).text;
    const names = ['meta.corp.example', 'loop.corp.example', 'self.corp.example'];
    const outs: Record<string, string> = {};
    for (const name of names) {
      const r = await execIn(c, 'curl', [
        '-s',
        '-4',
        '--connect-timeout',
        '3',
        '--max-time',
        '6',
        `http://${name}:8080/`,
      ]);
      outs[name] = `${r.stdout.trim()} exit=${r.code}`;
    }
    // And UDP to the same names' proxy IPs.
    for (const name of names) {
      const ips = resolve4(name);
      if (Array.isArray(ips)) {
        await execIn(c, process.execPath, [
          '-e',
          `const s=require('node:dgram').createSocket('udp4');s.send('x',8080,'${ips[0]}',()=>setTimeout(()=>process.exit(0),300))`,
        ]);
      }
    }
    const states: Record<string, Domain | undefined> = {};
    try {
      await until(
        () => {
          for (const n of names) states[n] = domainOf(n);
          return names.every((n) => states[n]?.state === 'failed');
        },
        10_000,
        'the three names to fail',
      );
    } catch {
      // reported below, with what each one is
    }
    await sleep(1000);
    const after = (await metrics()).text;
    const reached = reachedSince();
    report('rebinding', {
      curl: outs,
      states,
      reached,
      refused: delta(before, after, 'dnsnat_gateway_destinations_refused_total'),
    });
    expect.soft(reached, 'connections or datagrams that reached a forbidden address').toEqual([]);
    for (const n of names) {
      expect.soft(outs[n], `${n}: the request fails`).not.toMatch(/listener|hello/);
      expect.soft(states[n], `${n}: client status`).toMatchObject({
        state: 'failed',
        failureReason: 'inactive',
        failureDetail: 'destination-not-allowed',
      });
    }
    expect
      .soft(
        delta(before, after, 'dnsnat_gateway_destinations_refused_total'),
        'dnsnat_gateway_destinations_refused_total grew',
      )
      .toBeGreaterThan(0);
    // The honest path still works.
    expect((await probe()).filter((p) => !p.ok)).toEqual([]);
  }, 60_000);

  it('50,000 names: the bindings held for the client stay bounded and expire when it stops', async () => {
    await sleep(2500);
    const rss0 = rss();
    const before = (await metrics()).text;
    const flood = mallory().inject({
      cmd: 'control',
      mode: 'names',
      count: 50_000,
      prefix: 'e',
      suffix: 'corp.example',
      base: 2000,
      rate: 5000,
      seconds: 20,
    });
    const { result, probes, samples } = await watch(flood, { everyMs: 1000, bindings: true });
    const peak = maxOf(samples.map((x) => x.bindings));
    // bindingIdleSeconds: 5 and no NAT session: everything goes within a few sweeps.
    let left: number | undefined;
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      left = await bindingsOf('mallory', (await metrics()).text);
      if (left === 0) break;
      await sleep(1000);
    }
    const after = (await metrics()).text;
    report('50,000 names', {
      injected: result,
      gatewayReceived: delta(before, after, 'dnsnat_tunnel_udp_rx_datagrams_total'),
      accepted: delta(before, after, 'dnsnat_gateway_assigned_ips_total', { result: 'accepted' }),
      rateLimited: delta(before, after, 'dnsnat_tunnel_drop_control_rate_limited_total'),
      expired: delta(before, after, 'dnsnat_gateway_bindings_expired_total'),
      bindings: samples.map((x) => x.bindings),
      left,
      ...summarise(probes, samples, rss0),
    });
    expect(result.sent).toBe(50_000);
    expect(delta(before, after, 'dnsnat_tunnel_udp_rx_datagrams_total')).toBeGreaterThan(40_000);
    expect.soft(peak, 'bindings held for mallory (sampled) were read').toBeDefined();
    expect
      .soft(peak ?? Number.NaN, 'peak bindings held for mallory')
      .toBeLessThanOrEqual(LIMITS.bindingsPerClient);
    expect.soft(left, 'bindings held for mallory 20 s after the flood').toBe(0);
    expect
      .soft(delta(before, after, 'dnsnat_gateway_bindings_expired_total'), 'bindings expired')
      .toBeGreaterThan(0);
    expect
      .soft(
        probes.filter((p) => !p.ok),
        'honest connections that failed',
      )
      .toEqual([]);
    expect((await probe()).filter((p) => !p.ok)).toEqual([]);
  }, 120_000);

  it('every UDP source port to one name, then new flows to another: the gateway stays responsive', async () => {
    await sleep(2500);
    // port1 and port2 both resolve to the site; blocks 5001 and 5002.
    const reg = await mallory().inject({
      cmd: 'control',
      mode: 'names',
      count: 2,
      start: 1,
      prefix: 'port',
      suffix: 'corp.example',
      base: 5000,
      repeat: 3,
      rate: 10,
      seconds: 5,
    });
    expect(reg.sent).toBe(6);
    let st: GatewayStatus | undefined;
    const end = Date.now() + 10_000;
    const mapped = (x: GatewayStatus | undefined, d: string) =>
      x?.mappings.some((b) => b.clientId === 'mallory' && b.domain === d && b.realIps.includes('198.18.2.2'));
    while (Date.now() < end) {
      st = await gatewayStatus();
      if (mapped(st, 'port1.corp.example') && mapped(st, 'port2.corp.example')) break;
      await sleep(200);
    }
    expect(mapped(st, 'port1.corp.example'), 'port1.corp.example is mapped for mallory').toBe(true);
    expect(mapped(st, 'port2.corp.example'), 'port2.corp.example is mapped for mallory').toBe(true);
    const [proxy1] = proxyBlock(5001);
    const [proxy2] = proxyBlock(5002);
    const rss0 = rss();
    const before = (await metrics()).text;
    const fill = (async (): Promise<InjectSummary[]> => [
      await mallory().inject({
        cmd: 'udp-ports',
        dst: proxy1 as string,
        dport: 9,
        from: 1,
        to: 65535,
        rate: 20_000,
        seconds: 30,
      }),
      await mallory().inject({
        cmd: 'udp-ports',
        dst: proxy2 as string,
        dport: 9,
        from: 1,
        to: 5000,
        rate: 20_000,
        seconds: 10,
      }),
    ])();
    const { result, probes, samples } = await watch(fill);
    await sleep(1000);
    samples.push(await sample());
    const after = (await metrics()).text;
    const out = delta(before, after, 'dnsnat_tunnel_nat_forwarded_out_total');
    report('port-space fill', {
      injected: result,
      gatewayReceived: delta(before, after, 'dnsnat_tunnel_udp_rx_datagrams_total'),
      natForwardedOut: out,
      portsExhausted: delta(before, after, 'dnsnat_tunnel_nat_drop_ports_exhausted_total'),
      sessionLimit: delta(before, after, 'dnsnat_tunnel_nat_drop_session_limit_total'),
      ...summarise(probes, samples, rss0),
    });
    expect(result.map((r) => r.sent)).toEqual([65535, 5000]);
    // The harness: most of them went through the NAT (the rest: the session limit, or wireguard-go's TUN
    // queue, which tunDropped reports).
    expect(out, 'datagrams the NAT forwarded').toBeGreaterThan(30_000);
    expectGatewayHeld('port-space fill', rss0, probes, samples);
  }, 120_000);
});
