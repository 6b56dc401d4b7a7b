// The client against its neighbours, through the real wire. A real `dnsnat client` daemon in `c` with two
// gateways: `gw1`, a real `dnsnat gateway` serving `web` (*.corp.example, a UDP echo at the site behind it),
// and `gw2`, hostile: wireguard-go holding gw2's key, configured for `other` (*.other.example) only.
// Proves:
//   1. the stub on 100.100.111.1:53 answers the host's own queries (UDP and TCP) and nobody else's: a LAN
//      neighbour routing the sentinel through the client gets no answer although its packets arrive;
//   2. gw2 cannot send from gw1's proxy IPs (client_drop_proxy_source_not_served), nor to anything but the
//      client's tunnel address (client_drop_not_for_us), while the honest echo through gw1 keeps working.
// Root, wireguard-go, wg, python3 and dnsmasq.
//
//   lan 198.18.6.2 ── 198.18.6.1 ┐
//                                 c (client, tunnel 100.64.0.2) 198.18.0.2 ── 198.18.0.1 g1 (gateway) 198.18.2.1 ── s (198.18.2.2: dnsmasq, echo :7007)
//                                 └ 198.18.1.2 ── 198.18.1.1 g2 (wireguard-go as gw2, tunnel 100.64.0.9)
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { attackerToolsAvailable, type InjectArgs, type InjectSummary } from '../support/attacker.js';
import { JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';
import { fixtures } from '../support/topology.js';

const cli = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const injectScript = join(fixtures, 'inject.py');
const run = canRunPrivileged('client attack suite') && attackerToolsAvailable('client attack suite');

const SENTINEL = '100.100.111.1';
const CLIENT_TUNNEL = '100.64.0.2';
const GW2_TUNNEL = '100.64.0.9';
const LISTEN_PORT = 9999;

type Status = { role: string; counters: Record<string, number> };
type DnsResult = { answer: boolean; rcode?: number; a?: string[]; error?: string; ms: number };

/** `ip netns exec ns cmd args` without blocking the event loop (probes run while packets are injected). */
function execIn(ns: string, cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, cmd, ...args],
      { encoding: 'utf8', timeout: timeoutMs },
      (err, out, e) => (err ? reject(new Error(`${cmd} in ${ns}: ${err.message} ${e}`)) : resolve(out)),
    );
  });
}

/** One A query for `name`, built by hand, to `server`:53 over UDP or TCP (2-byte length prefix); 2 s timeout. */
const DNS_QUERY_PY = `
import json, socket, struct, sys, time
server, name, proto = sys.argv[1:4]
q = struct.pack('!6H', 0x2a2a, 0x0100, 1, 0, 0, 0)
q += b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0' + struct.pack('!2H', 1, 1)
def recvall(s, n):
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError('connection closed')
        b += c
    return b
def parse(r):
    flags, qd, an = struct.unpack('!HHH', r[2:8])
    i = 12
    while r[i]: i += r[i] + 1
    i += 5
    ips = []
    for _ in range(an):
        if r[i] & 0xC0 == 0xC0: i += 2
        else:
            while r[i]: i += r[i] + 1
            i += 1
        t, _c, _ttl, n = struct.unpack('!HHIH', r[i:i + 10])
        i += 10
        if t == 1: ips.append(socket.inet_ntoa(r[i:i + 4]))
        i += n
    return {'rcode': flags & 15, 'a': ips}
t0 = time.monotonic()
try:
    if proto == 'udp':
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(q, (server, 53))
        r = s.recv(4096)
    else:
        s = socket.create_connection((server, 53), timeout=2)
        s.sendall(struct.pack('!H', len(q)) + q)
        r = recvall(s, struct.unpack('!H', recvall(s, 2))[0])
    out = dict(answer=True, **parse(r))
except Exception as e:
    out = dict(answer=False, error=type(e).__name__ + ': ' + str(e))
out['ms'] = round((time.monotonic() - t0) * 1000)
print(json.dumps(out))
`;

async function dnsQuery(
  ns: string,
  name: string,
  proto: 'udp' | 'tcp',
  server = SENTINEL,
): Promise<DnsResult> {
  return JSON.parse(await execIn(ns, 'python3', ['-c', DNS_QUERY_PY, server, name, proto])) as DnsResult;
}

/** Sends `count` UDP echoes to ip:7007 from `ns`, one every `everyMs`; how many came back. */
async function echoProbe(
  ns: string,
  ip: string,
  count: number,
  everyMs = 100,
): Promise<{ sent: number; got: number }> {
  const code =
    "const s=require('node:dgram').createSocket('udp4');const [ip,n,every]=process.argv.slice(1);let got=0,sent=0;" +
    "s.on('message',()=>got++);const t=setInterval(()=>{s.send('echo-'+sent,7007,ip);if(++sent>=Number(n)){clearInterval(t);" +
    'setTimeout(()=>{console.log(JSON.stringify({sent,got}));process.exit(0)},1000)}},Number(every));';
  return JSON.parse(await execIn(ns, process.execPath, ['-e', code, ip, String(count), String(everyMs)]));
}

const inProxyRange = (ip: string) => {
  const [a, b] = ip.split('.').map(Number);
  return a === 100 && (b as number) >= 96 && (b as number) < 128;
};

/**
 * A hostile gateway: wireguard-go in `ns` listening on :51820 with `privateKey`, the client's key as its only
 * peer (no endpoint: it learns the client's when the client handshakes) and every IPv4 destination allowed,
 * so inject.py can write any packet into its TUN device and have it sealed to the client.
 */
async function startHostileGateway(
  lab: Lab,
  ns: string,
  privateKey: string,
  clientPublicKey: string,
  dir: string,
) {
  const ifname = `wgh${process.pid.toString(36)}`.slice(0, 15);
  const keyFile = join(dir, 'gw2.key');
  writeFileSync(keyFile, `${privateKey}\n`, { mode: 0o600 });
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'wireguard-go', '-f', ifname], {
    env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' },
    stdio: 'ignore',
  });
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    lab.exec(ns, 'ip', ['link', 'del', ifname], { allowFail: true });
    // The UAPI socket is not per namespace, and stays behind when wireguard-go is killed.
    rmSync(`/var/run/wireguard/${ifname}.sock`, { force: true });
  };
  try {
    for (
      let end = Date.now() + 10_000;
      !lab.exec(ns, 'wg', ['show', ifname], { allowFail: true });
      await sleep(100)
    ) {
      if (Date.now() > end || child.exitCode !== null)
        throw new Error(`wireguard-go did not create ${ifname}`);
    }
    lab.exec(ns, 'wg', ['set', ifname, 'private-key', keyFile, 'listen-port', '51820']);
    lab.exec(ns, 'wg', ['set', ifname, 'peer', clientPublicKey, 'allowed-ips', '0.0.0.0/0']);
    lab.exec(ns, 'ip', ['addr', 'add', `${GW2_TUNNEL}/32`, 'dev', ifname]);
    lab.exec(ns, 'ip', ['link', 'set', ifname, 'up']);
  } catch (e) {
    stop();
    throw e;
  }
  const latestHandshake = () =>
    Number(
      lab.exec(ns, 'wg', ['show', ifname, 'latest-handshakes'], { allowFail: true }).split('\t')[1] ?? 0,
    ) || 0;
  /** `count` IPv4/UDP datagrams src → dst:dport (source ports from `firstPort` up), sealed to the client. */
  const sendUdp = async (
    src: string,
    dst: string,
    dport: number,
    count: number,
    firstPort: number,
    payload?: string,
  ): Promise<InjectSummary> => {
    const args: InjectArgs = {
      cmd: 'udp-ports',
      src,
      dst,
      dport,
      from: firstPort,
      to: firstPort + count - 1,
      rate: 1000,
    };
    const argv = JSON.stringify({ ...args, payload, ifname });
    const out = await execIn(ns, 'python3', [injectScript, argv], 60_000);
    return JSON.parse(out.trim().split('\n').pop() ?? '') as InjectSummary;
  };
  return { child, stop, latestHandshake, sendUdp };
}

describe.runIf(run)('the client against a LAN neighbour and a hostile gateway', () => {
  const lab = new Lab('catk');
  let c = '';
  let g1 = '';
  let g2 = '';
  let s = '';
  let lan = '';
  let dir = '';
  let client: JsonLineProcess | undefined;
  let gw2: Awaited<ReturnType<typeof startHostileGateway>> | undefined;
  let listener: JsonLineProcess | undefined;
  const kClient = native.generateKeypair();
  const kGw1 = native.generateKeypair();
  const kGw2 = native.generateKeypair();

  const status = async (): Promise<Status> =>
    JSON.parse(
      await execIn(c, process.execPath, [cli, 'status', '--json', '--socket', join(dir, 'client.sock')]),
    );
  const counter = async (name: string) => (await status()).counters[name] ?? 0;
  /** Datagrams the listener in `c` has received so far. */
  const heard = () => listener?.lines.filter((l) => (l as { from?: string }).from !== undefined).length ?? 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dnsnat-client-attacks-'));
    c = lab.netns('c');
    g1 = lab.netns('g1');
    g2 = lab.netns('g2');
    s = lab.netns('s');
    lan = lab.netns('lan');
    lab.link(c, ['198.18.0.2/24'], g1, ['198.18.0.1/24']);
    lab.link(c, ['198.18.1.2/24'], g2, ['198.18.1.1/24']);
    lab.link(lan, ['198.18.6.2/24'], c, ['198.18.6.1/24']);
    lab.link(g1, ['198.18.2.1/24'], s, ['198.18.2.2/24']);
    lab.exec(s, 'ip', ['route', 'add', 'default', 'via', '198.18.2.1']);
    // The client reaches its upstream resolver (dnsmasq at the site) through the gateway's host.
    lab.exec(c, 'ip', ['route', 'add', '198.18.2.0/24', 'via', '198.18.0.1']);
    // The LAN neighbour uses the client's host as its way to the sentinel.
    lab.exec(lan, 'ip', ['route', 'add', `${SENTINEL}/32`, 'via', '198.18.6.1']);

    const site = lab.node(s, join(fixtures, 'site-node.cjs'), {});
    await site.waitFor((l) => l.ready === true, 15_000, 'site');
    lab.exec(s, 'dnsmasq', [
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      '--listen-address=198.18.2.2',
      `--pid-file=${join(dir, 'dnsmasq.pid')}`,
      '--address=/corp.example/198.18.2.2',
    ]);
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [
        `privateKey: ${kGw1.privateKey}`,
        'listen: "0.0.0.0:51820"',
        'tunnel: { ipv4: 100.64.0.1 }',
        'nameservers: [198.18.2.2]',
        'masquerade: true',
        'resources:',
        '  - { id: web, pattern: "*.corp.example", ipStack: ipv4 }',
        'clients:',
        `  - { id: alice, publicKey: ${kClient.publicKey}, tunnelIps: [${CLIENT_TUNNEL}], resources: [web] }`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'client.yaml'),
      [
        `privateKey: ${kClient.privateKey}`,
        `tunnel: { ipv4: ${CLIENT_TUNNEL} }`,
        'upstreamDns: [198.18.2.2]',
        `statusSocket: ${join(dir, 'client.sock')}`,
        'gateways:',
        `  - { id: gw1, endpoint: "198.18.0.1:51820", publicKey: ${kGw1.publicKey} }`,
        `  - { id: gw2, endpoint: "198.18.1.1:51820", publicKey: ${kGw2.publicKey}, tunnelIps: [${GW2_TUNNEL}] }`,
        'resources:',
        '  - { id: web, pattern: "*.corp.example", gateway: gw1, ipStack: ipv4 }',
        '  - { id: other, pattern: "*.other.example", gateway: gw2, ipStack: ipv4 }',
        '',
      ].join('\n'),
    );
    lab.node(g1, join(fixtures, 'daemon.cjs'), {
      args: ['gateway', '-c', join(dir, 'gateway.yaml'), '-s', join(dir, 'gateway.sock')],
    });
    for (let end = Date.now() + 20_000; ; await sleep(200)) {
      const ok = await execIn(g1, process.execPath, [
        cli,
        'status',
        '--socket',
        join(dir, 'gateway.sock'),
      ]).then(
        (out) => out.includes('gateway'),
        () => false,
      );
      if (ok) break;
      if (Date.now() > end) throw new Error('the gateway daemon did not start');
    }
    gw2 = await startHostileGateway(lab, g2, kGw2.privateKey, kClient.publicKey, dir);
    client = lab.node(c, join(fixtures, 'daemon.cjs'), { args: ['client', '-c', join(dir, 'client.yaml')] });
    await client.waitFor((l) => (l as { msg?: string }).msg === 'client started', 20_000, 'client started');

    // A counting UDP listener on every address of `c`.
    const code =
      "const u=require('node:dgram').createSocket('udp4');u.on('message',(m,r)=>console.log(JSON.stringify({from:r.address,n:m.length})));" +
      `u.bind(${LISTEN_PORT},'0.0.0.0',()=>console.log(JSON.stringify({ready:true})));`;
    listener = new JsonLineProcess(
      spawn('ip', ['netns', 'exec', c, process.execPath, '-e', code], { stdio: ['pipe', 'pipe', 'pipe'] }),
    );
    await listener.waitFor((l) => l.ready === true, 10_000, 'listener');
  }, 90_000);

  afterAll(() => {
    gw2?.stop();
    if (listener?.child.exitCode === null) listener.child.kill('SIGKILL');
    lab.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the stub answers its own host over UDP and TCP, and a LAN neighbour not at all', async () => {
    for (const proto of ['udp', 'tcp'] as const) {
      const r = await dnsQuery(c, 'app.corp.example', proto);
      expect(r, `${proto} from the host itself`).toMatchObject({ answer: true, rcode: 0 });
      expect(r.a?.length, `${proto}: A records`).toBeGreaterThan(0);
      expect(r.a?.every(inProxyRange), `${proto}: ${r.a} in 100.96.0.0/11`).toBe(true);
    }
    const queries0 = await counter('dns_queries');
    const fromLan = {
      udp: await dnsQuery(lan, 'app.corp.example', 'udp'),
      tcp: await dnsQuery(lan, 'app.corp.example', 'tcp'),
    };
    // The harness: the neighbour's packets do reach the client's host (the kernel answers ICMP for any local address).
    const ping = await execIn(lan, 'ping', ['-c1', '-W2', SENTINEL]).catch((e: Error) => e.message);
    const queries1 = await counter('dns_queries');
    console.log(
      `[client-attacks] LAN neighbour: ${JSON.stringify({ fromLan, queries: queries1 - queries0 })}`,
    );
    expect(ping, 'ping from the LAN to the sentinel').toMatch(/1 received/);
    expect(fromLan.udp, 'UDP query from the LAN').toMatchObject({ answer: false });
    expect(fromLan.udp.error, 'UDP: no answer within 2 s').toMatch(/timeout|timed out/i);
    expect(fromLan.tcp, 'TCP query from the LAN').toMatchObject({ answer: false });
    expect(queries1 - queries0, 'queries the stub saw from the LAN').toBe(0);
  });

  it('gw2 cannot send from gw1 proxy IPs, nor to anything but the tunnel address; the echo through gw1 keeps working', async () => {
    const hostile = gw2 as NonNullable<typeof gw2>;
    // The client handshakes with gw2 when it first tells it about a name of `other` (wireguard-go then learns
    // the client's endpoint).
    let otherIps: string[] = [];
    for (let end = Date.now() + 20_000; hostile.latestHandshake() === 0; await sleep(500)) {
      if (Date.now() > end) throw new Error('the client never handshook with gw2');
      otherIps = (await dnsQuery(c, 'x.other.example', 'udp')).a ?? [];
      const send = `require('node:dgram').createSocket('udp4').send('x',9,'${otherIps[0]}',()=>process.exit(0))`;
      if (otherIps[0]) await execIn(c, process.execPath, ['-e', send]);
    }
    const appIps = (await dnsQuery(c, 'app.corp.example', 'udp')).a ?? [];
    expect(appIps.length, 'proxy IPs of app.corp.example (gw1)').toBe(4);
    const appIp = appIps[0] as string;
    const before = await echoProbe(c, appIp, 20);
    expect(before, 'honest echo through gw1 before the attack').toEqual({ sent: 20, got: 20 });

    // The harness: from a source gw2 does serve (a proxy IP of its own resource), datagrams reach the listener.
    const heard0 = heard();
    const allowed = await hostile.sendUdp(otherIps[0] as string, CLIENT_TUNNEL, LISTEN_PORT, 50, 1);
    await sleep(500);
    const allowedHeard = heard() - heard0;
    expect(allowed.sent).toBe(50);
    expect(allowedHeard, 'datagrams from gw2 own proxy IP heard by the listener').toBeGreaterThanOrEqual(25);

    // The attack, while the honest app keeps using gw1: 300 datagrams from gw1's proxy IPs to the listener;
    // then from gw2's own tunnel address to what is not the client's tunnel address: the stub (a real query,
    // every byte ASCII so it passes as inject.py's payload string) and the host's LAN address.
    const c0 = (await status()).counters;
    const heard1 = heard();
    const during = echoProbe(c, appIp, 40);
    await sleep(300);
    const spoofed: InjectSummary[] = [];
    for (const [i, src] of appIps.entries()) {
      spoofed.push(await hostile.sendUdp(src, CLIENT_TUNNEL, LISTEN_PORT, 75, 1000 + 75 * i));
    }
    const query = `\0\x07\x01\0\0\x01${'\0'.repeat(6)}\x03app\x04corp\x07example\0\0\x01\0\x01`;
    const notForUs = [
      await hostile.sendUdp(GW2_TUNNEL, SENTINEL, 53, 100, 2000, query),
      await hostile.sendUdp(GW2_TUNNEL, '198.18.6.1', LISTEN_PORT, 100, 2000),
    ];
    const echoDuring = await during;
    await sleep(500);
    const c1 = (await status()).counters;
    const delta = (k: string) => (c1[k] ?? 0) - (c0[k] ?? 0);
    const after = await echoProbe(c, appIp, 20);
    const spoofSent = spoofed.reduce((n, r) => n + r.sent, 0);
    const notForUsSent = notForUs.reduce((n, r) => n + r.sent, 0);
    const heardInAttack = heard() - heard1;
    console.log(
      `[client-attacks] hostile gateway: ${JSON.stringify({
        appIps,
        otherIps,
        allowed: { sent: allowed.sent, heard: allowedHeard },
        spoofSent,
        notForUsSent,
        heardInAttack,
        udpRx: delta('udp_rx_datagrams'),
        proxySourceNotServed: delta('client_drop_proxy_source_not_served'),
        notForUs: delta('client_drop_not_for_us'),
        sourceNotAllowed: delta('drop_source_not_allowed'),
        dnsQueries: delta('dns_queries'),
        echo: { before, during: echoDuring, after },
      })}`,
    );
    expect(spoofSent).toBe(300);
    expect(notForUsSent).toBe(200);
    expect(heardInAttack, 'datagrams the listener received during the attack').toBe(0);
    expect(
      delta('client_drop_proxy_source_not_served'),
      'client_drop_proxy_source_not_served grew',
    ).toBeGreaterThanOrEqual(spoofSent / 2);
    expect(delta('client_drop_not_for_us'), 'client_drop_not_for_us grew').toBeGreaterThanOrEqual(
      notForUsSent / 2,
    );
    expect(delta('dns_queries'), 'queries the stub took from gw2').toBe(0);
    expect(echoDuring, 'honest echo through gw1 during the attack').toEqual({ sent: 40, got: 40 });
    expect(after, 'honest echo through gw1 after the attack').toEqual({ sent: 20, got: 20 });
  }, 90_000);
});
