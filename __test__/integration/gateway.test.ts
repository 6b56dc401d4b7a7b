// The gateway end to end, in three network namespaces with real peers: a client tunnel (the native Tunnel
// driven by a fixture, standing in for the client daemon) sends AssignedIps, the gateway (`startGateway`
// from the compiled TypeScript) resolves through a real dnsmasq on the site, installs the NAT, and the
// client reaches HTTP servers by proxy IP with curl. The site's record is then changed, removed and
// restored while traffic flows: new connections follow the change, the removal reads `inactive`, and the
// gateway heals the mapping from traffic alone. Root, `ip netns`, dnsmasq, nft, curl.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';

const root = join(__dirname, '..', '..');
const fixtures = join(__dirname, '..', 'fixtures');

function toolsAvailable(): boolean {
  const missing = ['dnsmasq', 'nft', 'curl'].filter((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return true;
  const why = `gateway integration tests: missing ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(why);
  console.warn(`skipping ${why}`);
  return false;
}

const run = canRunPrivileged('gateway integration tests') && toolsAvailable();

const DNS = '198.18.2.2';
const SITE_A = '198.18.2.10';
const SITE_B = '198.18.2.11';
const SITE_A6 = '2001:db8:2::10';
const SITE_B6 = '2001:db8:2::11';
const PROXY = ['100.96.0.1', '100.96.0.2', '100.96.0.3', '100.96.0.4'];
const DUAL_V4 = ['100.96.0.9', '100.96.0.10', '100.96.0.11', '100.96.0.12'];
const DUAL_V6 = [
  'fd00:2021:1111:8000::9',
  'fd00:2021:1111:8000::a',
  'fd00:2021:1111:8000::b',
  'fd00:2021:1111:8000::c',
];

type Line = Record<string, unknown>;
type Status = { resource: string; domain: string; status: string; seq: number; reason?: string };

describe.runIf(run)('gateway: resolution, NAT and self-healing against a real dnsmasq', () => {
  const lab = new Lab('gwit');
  const tmp = mkdtempSync(join(tmpdir(), 'dnsnat-gw-it-'));
  // Compiled inside the repository so that `../index.js` and node_modules resolve as in the package.
  const dist = join(root, 'node_modules', '.cache', `dnsnat-gw-it-${process.pid}`);
  const hosts = join(tmp, 'hosts');
  const configFile = join(tmp, 'gateway.yaml');
  const kc = native.generateKeypair();
  const kg = native.generateKeypair();
  let c: string;
  let g: string;
  let s: string;
  let client: JsonLineProcess;
  let gateway: JsonLineProcess;

  const config = (resources: string) => `privateKey: ${kg.privateKey}
listen: "0.0.0.0:51820"
tunnel: { ipv4: 100.64.0.1, ipv6: "fd00:2021:1111::1" }
device: dnsnat-g
nameservers: [${DNS}]
masquerade: true
metrics: "127.0.0.1:9109"
resources:
${resources}
  - { id: dual, pattern: "dual.corp.example", ipStack: dual }
clients:
  - { id: alice, publicKey: ${kc.publicKey}, tunnelIps: [100.64.0.2, "fd00:2021:1111::2"], resources: [web, dual] }
`;
  const WEB = '  - { id: web, pattern: "*.corp.example", ipStack: ipv4, ports: ["tcp/8080", "icmp"] }';

  const DUAL_HOSTS = `${SITE_A} dual.corp.example\n${SITE_A6} dual.corp.example\n${SITE_B6} dual.corp.example\n`;

  /** Points app.corp.example at `ip` (or nowhere) and makes dnsmasq re-read it. */
  function setRecord(ip: string | undefined): void {
    writeFileSync(hosts, `${DUAL_HOSTS}${ip ? `${ip} app.corp.example\n` : ''}`);
    const pid = Number(readFileSync(join(tmp, 'dnsmasq.pid'), 'utf8').trim());
    process.kill(pid, 'SIGHUP');
  }

  let seq = 0;
  function assign(): number {
    seq += 1;
    const body = JSON.stringify({ resource: 'web', domain: 'app.corp.example', proxy_ips: PROXY, seq });
    client.send({ sendControl: [kg.publicKey, 0, body] });
    return seq;
  }

  const statuses = (): Status[] =>
    client.lines
      .map((l) => (l as { event?: { kind: string; messageType?: number; body?: string } }).event)
      .filter((e) => e?.kind === 'control' && e.messageType === 1)
      .map((e) => JSON.parse(e?.body ?? '{}') as Status);

  async function waitStatus(pred: (s: Status) => boolean, what: string, timeoutMs = 15_000): Promise<Status> {
    const line = await client.waitFor<{ event?: { kind: string; messageType?: number; body?: string } }>(
      (l) =>
        l.event?.kind === 'control' && l.event.messageType === 1 && pred(JSON.parse(l.event.body ?? '{}')),
      timeoutMs,
      what,
    );
    return JSON.parse(line.event?.body ?? '{}') as Status;
  }

  const curl = (ip: string) =>
    lab
      .exec(c, 'sh', ['-c', `out=$(curl -s --max-time 3 http://${ip}:8080/); rc=$?; echo "$out exit=$rc"`])
      .trim();

  /** Repeats `f` until `pred` holds, at most `timeoutMs`. */
  async function until(f: () => string, pred: (out: string) => boolean, timeoutMs: number): Promise<string> {
    const end = Date.now() + timeoutMs;
    let out = f();
    while (!pred(out) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 300));
      out = f();
    }
    return out;
  }

  async function metrics(): Promise<string> {
    const before = gateway.lines.length;
    gateway.send({ metrics: true });
    const line = await gateway.waitFor<Line>(
      (l) => l.metrics !== undefined && gateway.lines.indexOf(l) >= before,
    );
    return String(line.metrics);
  }

  beforeAll(async () => {
    rmSync(dist, { recursive: true, force: true });
    try {
      execFileSync(
        process.execPath,
        [
          join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
          '-p',
          join(root, 'tsconfig.build.json'),
          '--outDir',
          join(dist, 'ts'),
          '--declaration',
          'false',
          '--sourceMap',
          'false',
        ],
        { stdio: 'pipe' },
      );
    } catch {
      // Type errors elsewhere in the tree still emit JavaScript; the gateway's own are caught by tsc --noEmit.
    }
    mkdirSync(dist, { recursive: true });
    writeFileSync(
      join(dist, 'index.js'),
      `module.exports = require(${JSON.stringify(join(root, 'index.js'))});\n`,
    );

    c = lab.netns('c');
    g = lab.netns('g');
    s = lab.netns('s');
    lab.link(c, ['198.18.0.2/24'], g, ['198.18.0.1/24']);
    lab.link(g, ['198.18.2.1/24', '2001:db8:2::1/64'], s, [
      `${DNS}/24`,
      `${SITE_A}/24`,
      `${SITE_B}/24`,
      `${SITE_A6}/64`,
      `${SITE_B6}/64`,
    ]);

    writeFileSync(hosts, `${DUAL_HOSTS}${SITE_A} app.corp.example\n`);
    lab.exec(s, 'dnsmasq', [
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      '--port=53',
      '--user=root',
      '--group=root',
      `--listen-address=${DNS}`,
      `--pid-file=${join(tmp, 'dnsmasq.pid')}`,
      `--addn-hosts=${hosts}`,
      '--local=/corp.example/',
      '--local-ttl=1',
      '--neg-ttl=1',
    ]);
    for (const [host, name] of [
      [SITE_A, 'site-a'],
      [SITE_B, 'site-b'],
      [SITE_A6, 'site-a6'],
      [SITE_B6, 'site-b6'],
    ] as const) {
      const p = lab.node(s, join(fixtures, 'http-server.cjs'), { host, port: 8080, name });
      await p.waitFor((l) => l.ready === true, 10_000, `${name} ready`);
    }

    writeFileSync(configFile, config(WEB));
    gateway = lab.node(g, join(fixtures, 'gateway-node.cjs'), { dist, config: configFile });
    await gateway.waitFor((l) => l.ready === true || l.fatal !== undefined, 30_000, 'gateway ready');
    const fatal = gateway.lines.find((l) => (l as Line).fatal !== undefined);
    if (fatal) throw new Error(`gateway failed to start: ${JSON.stringify(fatal)}`);

    client = lab.node(c, join(fixtures, 'tunnel-node.cjs'), {
      tunnel: {
        name: 'dnsnat-c',
        privateKey: kc.privateKey,
        ipv4: '100.64.0.2',
        ipv6: 'fd00:2021:1111::2',
        routes: ['100.96.0.0/11', 'fd00:2021:1111:8000::/107'],
      },
      peers: [
        {
          publicKey: kg.publicKey,
          endpoint: '198.18.0.1:51820',
          allowedIps: [
            '100.64.0.1/32',
            'fd00:2021:1111::1/128',
            '100.96.0.0/11',
            'fd00:2021:1111:8000::/107',
          ],
          persistentKeepalive: 1,
        },
      ],
    });
    await client.waitFor((l) => l.ready === true, 10_000, 'client ready');
  }, 90_000);

  afterAll(async () => {
    if (gateway && gateway.child.exitCode === null) {
      gateway.send({ stop: true });
      await gateway.waitFor((l) => l.stopped === true, 5_000, 'gateway stopped').catch(() => undefined);
    }
    lab.cleanup();
    rmSync(dist, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('installs forwarding and the masquerade rule', () => {
    expect(lab.exec(g, 'nft', ['list', 'table', 'inet', 'dnsnat_dnsnat_g'])).toMatch(
      /ip saddr 100\.64\.0\.0\/11 masquerade/,
    );
    expect(lab.exec(g, 'sysctl', ['-n', 'net.ipv4.ip_forward']).trim()).toBe('1');
  });

  it('AssignedIps → resolution through dnsmasq → active, and curl reaches the site by proxy IP', async () => {
    // The first message may race the handshake; the client resends, as the real client does.
    const first = assign();
    const done = await waitStatus((st) => st.seq === first, 'first status', 5_000).catch(() => undefined);
    const st = done ?? (await waitStatus((x) => x.seq === assign(), 'status after resend'));
    expect(st).toEqual({ resource: 'web', domain: 'app.corp.example', status: 'active', seq: st.seq });
    expect(curl(PROXY[0] as string)).toBe(`hello from site-a; you are 198.18.2.1 exit=0`);
    // A port the resource does not allow is refused at once.
    expect(
      lab.exec(c, 'sh', ['-c', `curl -s --max-time 3 http://${PROXY[1]}:9999/; echo "exit=$?"`]).trim(),
    ).toBe('exit=7');
  });

  it('a dual-stack resource: IPv6 proxies map to IPv6 servers (k mod n), IPv4 to IPv4, both masqueraded', async () => {
    seq += 1;
    const mine = seq;
    const body = JSON.stringify({
      resource: 'dual',
      domain: 'dual.corp.example',
      proxy_ips: [...DUAL_V6, ...DUAL_V4],
      seq,
    });
    client.send({ sendControl: [kg.publicKey, 0, body] });
    expect(await waitStatus((x) => x.seq === mine, 'dual status')).toEqual({
      resource: 'dual',
      domain: 'dual.corp.example',
      status: 'active',
      seq: mine,
    });
    const get = (ip: string) =>
      lab
        .exec(c, 'sh', ['-c', `curl -s --max-time 3 -g http://${ip}:8080/; echo " exit=$?"`])
        .replace(/\n/g, '')
        .trim();
    // Proxy k of a family → sorted real k mod n: ::9 → ::10, ::a → ::11, ::b → ::10, ::c → ::11.
    expect(get(`[${DUAL_V6[0]}]`)).toBe('hello from site-a6; you are 2001:db8:2::1 exit=0');
    expect(get(`[${DUAL_V6[1]}]`)).toBe('hello from site-b6; you are 2001:db8:2::1 exit=0');
    expect(get(`[${DUAL_V6[2]}]`)).toBe('hello from site-a6; you are 2001:db8:2::1 exit=0');
    expect(get(DUAL_V4[3] as string)).toBe('hello from site-a; you are 198.18.2.1 exit=0');
  });

  it('a rejected AssignedIps reads inactive with its reason', async () => {
    seq += 1;
    const body = JSON.stringify({
      resource: 'web',
      domain: 'app.corp.example',
      proxy_ips: ['10.0.0.1', ...PROXY.slice(1)],
      seq,
    });
    client.send({ sendControl: [kg.publicKey, 0, body] });
    const mine = seq;
    expect(await waitStatus((x) => x.seq === mine, 'rejection')).toEqual(
      expect.objectContaining({ status: 'inactive', reason: 'proxy-ip-out-of-range' }),
    );
  });

  it('a changed record: new connections follow it once the TTL has passed, a live one keeps its server', async () => {
    const live = lab.node(c, join(fixtures, 'http-keepalive.cjs'), {
      url: `http://${PROXY[2]}:8080/`,
      intervalMs: 300,
    });
    const first = await live.waitFor<{ body?: string; localPort?: number }>(
      (l) => l.body !== undefined,
      10_000,
      'live',
    );
    expect(first.body).toContain('site-a');
    setRecord(SITE_B);
    await new Promise((r) => setTimeout(r, 1_500));
    // The first new session past the TTL still uses the old address and triggers the background refresh.
    const out = await until(
      () => curl(PROXY[0] as string),
      (o) => o.includes('site-b'),
      15_000,
    );
    expect(out).toBe('hello from site-b; you are 198.18.2.1 exit=0');
    expect(await metrics()).toMatch(/dnsnat_gateway_refresh_resolutions_total [1-9]/);
    // The live connection went on talking to the old server through its NAT session, on one socket.
    const seen = live.lines.length;
    await live.waitFor(() => live.lines.length >= seen + 2, 5_000, 'two more answers on the live connection');
    const answers = live.lines as Array<{ body?: string; localPort?: number; error?: string }>;
    expect(answers.filter((a) => a.error !== undefined)).toEqual([]);
    expect(new Set(answers.map((a) => a.body))).toEqual(new Set(['hello from site-a; you are 198.18.2.1']));
    expect(new Set(answers.map((a) => a.localPort)).size).toBe(1);
    expect(answers.length).toBeGreaterThan(5);
    live.child.kill();
  });

  it('a removed record reads inactive; the proxy IPs stay registered and answer unreachable', async () => {
    setRecord(undefined);
    await new Promise((r) => setTimeout(r, 1_500));
    const mine = assign();
    expect(await waitStatus((x) => x.seq === mine, 'inactive after removal')).toEqual({
      resource: 'web',
      domain: 'app.corp.example',
      status: 'inactive',
      seq: mine,
      reason: 'nxdomain',
    });
    // ICMP unreachable: curl fails at once (7), not by timing out (28).
    expect(curl(PROXY[0] as string)).toBe('exit=7');
  });

  it('a restored record: traffic alone heals the mapping and the client hears an unsolicited active', async () => {
    const lastSeq = seq;
    const before = statuses().length;
    setRecord(SITE_A);
    const out = await until(
      () => curl(PROXY[0] as string),
      (o) => o.includes('site-a'),
      20_000,
    );
    expect(out).toBe('hello from site-a; you are 198.18.2.1 exit=0');
    const end = Date.now() + 10_000;
    while (
      !statuses()
        .slice(before)
        .some((x) => x.status === 'active') &&
      Date.now() < end
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const healed = statuses()
      .slice(before)
      .find((x) => x.status === 'active');
    expect(healed).toEqual({ resource: 'web', domain: 'app.corp.example', status: 'active', seq: lastSeq });
    const m = await metrics();
    expect(m).toMatch(/dnsnat_gateway_heal_resolutions_total [1-9]/);
    expect(m).toMatch(/dnsnat_gateway_unsolicited_status_total [1-9]/);
    expect(m).toMatch(/dnsnat_gateway_resolution_duration_seconds_count [1-9]/);
    // The same text is served over HTTP on the opt-in address.
    expect(lab.exec(g, 'curl', ['-s', 'http://127.0.0.1:9109/metrics'])).toContain(
      'dnsnat_gateway_assigned_ips_total',
    );
  });

  it('a reload that removes the resource ends its traffic at once; a broken file is refused', async () => {
    writeFileSync(configFile, config('  - { id: web, pattern: "*.corp.*" }'));
    gateway.child.kill('SIGHUP');
    await gateway.waitFor<Line>(
      (l) => l.msg === 'config reload rejected; the running config stays',
      10_000,
      'rejected reload',
    );
    expect(curl(PROXY[0] as string)).toContain('site-a');

    writeFileSync(configFile, config('  - { id: web, pattern: "db.corp.example", ipStack: ipv4 }'));
    gateway.child.kill('SIGHUP');
    await waitStatus((x) => x.reason === 'domain-not-matching', 'status after reload', 10_000);
    expect(curl(PROXY[0] as string)).not.toContain('site-a');
  });

  it('stopping removes the masquerade rule', async () => {
    gateway.send({ stop: true });
    await gateway.waitFor((l) => l.stopped === true, 10_000, 'gateway stopped');
    expect(lab.exec(g, 'nft', ['list', 'tables'])).not.toContain('dnsnat_dnsnat_g');
  });
});
