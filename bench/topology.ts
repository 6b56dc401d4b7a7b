// The three paths the throughput benchmark compares, each in its own three namespaces (client, gateway,
// site) joined by veth links, with the same addresses in every triple:
//
//   client 198.18.0.2 ── 198.18.0.1 gateway 198.18.2.1 ── 198.18.2.2 site (iperf3 server)
//
// - dnsnat: a client Tunnel in the client role (stub DNS, resource *.bench.example served by gateway gw1)
//   and a gateway Tunnel with a NAT peer. The client resolves site.bench.example through its stub, opens
//   the gate, and the gateway maps the proxy IP to the site, as the TypeScript client and gateway would.
// - wireguard-go: one wireguard-go device per side, set up with wg(8); the gateway DNATs the proxy IP
//   100.96.0.1 to the site with nftables.
// - kernel: no tunnel; the client routes the proxy range to the gateway, which DNATs like wireguard-go.
//
// All three masquerade towards the site on the gateway, so the kernel's share of the work is the same.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonLineProcess, Lab } from '../__test__/support/netns.js';
import native from '../ts/native.js';
import { call, nsExec, pidsIn, sleep } from './lib.js';

export const SITE = '198.18.2.2';
export const MTU = 1420; // wireguard-go's default; dnsnat's default is 1280, set here to the same for fairness
export const RESOURCE_ZONE = 'bench.example';

export interface Path {
  name: 'dnsnat' | 'wireguard-go' | 'kernel';
  client: string;
  gateway: string;
  site: string;
  /** The address the client connects to (a proxy IP). */
  target: string;
  /** Pids whose CPU time is the path's own (tunnel daemons); none for the kernel path. */
  daemonPids: () => number[];
}

export interface DnsnatPath extends Path {
  clientDaemon: JsonLineProcess;
  gatewayDaemon: JsonLineProcess;
  clientKey: string;
}

const daemon = join(__dirname, 'tunnel-daemon.cjs');

function triple(lab: Lab, prefix: string): { c: string; g: string; s: string } {
  const c = lab.netns(`${prefix}c`);
  const g = lab.netns(`${prefix}g`);
  const s = lab.netns(`${prefix}s`);
  lab.link(c, ['198.18.0.2/24'], g, ['198.18.0.1/24']);
  lab.link(g, ['198.18.2.1/24'], s, [`${SITE}/24`]);
  lab.exec(g, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  lab.exec(s, 'iperf3', ['-s', '-D', '-B', SITE]);
  return { c, g, s };
}

/** nftables on the gateway: DNAT of the proxy IP (unless dnsnat does it) and masquerade towards the site. */
function gatewayNft(lab: Lab, g: string, dnat: boolean): void {
  const rules = [
    'add table ip bench',
    'add chain ip bench post { type nat hook postrouting priority srcnat; }',
    `add rule ip bench post ip daddr ${SITE} masquerade`,
  ];
  if (dnat) {
    rules.push(
      'add chain ip bench pre { type nat hook prerouting priority dstnat; }',
      `add rule ip bench pre ip daddr 100.96.0.1 dnat to ${SITE}`,
    );
  }
  lab.exec(g, 'nft', [rules.join('; ')]);
}

/** Resolves a name through a DNS server from inside a namespace (Node's resolver, one try). */
export function resolve4(ns: string, server: string, name: string): string[] {
  const script =
    `const {Resolver}=require('node:dns').promises;const r=new Resolver({timeout:3000,tries:1});` +
    `r.setServers(['${server}']);r.resolve4('${name}').then(a=>console.log(JSON.stringify(a)),` +
    `e=>{console.log(JSON.stringify({error:e.code}));process.exit(1)})`;
  return JSON.parse(nsExec(ns, process.execPath, ['-e', script], 10_000)) as string[];
}

export async function dnsnatPath(lab: Lab): Promise<DnsnatPath> {
  const { c, g, s } = triple(lab, 'd');
  gatewayNft(lab, g, false);
  const kc = native.generateKeypair();
  const kg = native.generateKeypair();
  const gatewayDaemon = lab.node(g, daemon, {
    tunnel: {
      name: 'dnsnat-g',
      privateKey: kg.privateKey,
      listen: '0.0.0.0:51820',
      ipv4: '100.64.0.1',
      routes: ['100.64.0.2/32'],
      mtu: MTU,
    },
    peers: [{ publicKey: kc.publicKey, allowedIps: ['100.64.0.2/32'], nat: true }],
  });
  await gatewayDaemon.waitFor((l) => l.ready === true, 10_000, 'gateway ready');
  const clientDaemon = lab.node(c, daemon, {
    tunnel: {
      name: 'dnsnat-c',
      privateKey: kc.privateKey,
      ipv4: '100.64.0.2',
      mtu: MTU,
      client: {
        resources: [{ id: 'web', pattern: `*.${RESOURCE_ZONE}`, gateway: 'gw1', ipStack: 'ipv4' }],
        upstream: ['198.18.0.1'],
      },
    },
    peers: [
      {
        publicKey: kg.publicKey,
        endpoint: '198.18.0.1:51820',
        allowedIps: ['100.64.0.1/32', '100.96.0.0/11'],
        gatewayId: 'gw1',
      },
    ],
  });
  await clientDaemon.waitFor((l) => l.ready === true, 10_000, 'client ready');
  // What the TypeScript client and gateway do on the first query of a resource name.
  const domain = `site.${RESOURCE_ZONE}`;
  const [proxy] = resolve4(c, '100.100.111.1', domain);
  if (proxy === undefined) throw new Error('the stub gave no proxy IP');
  await call(gatewayDaemon, 'setMapping', kc.publicKey, proxy, { realIp: SITE });
  await call(clientDaemon, 'gate', 'gw1', domain, 'web', 'pass');
  nsExec(c, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', proxy], 15_000);
  const pids = [clientDaemon.child.pid, gatewayDaemon.child.pid].filter((p): p is number => p !== undefined);
  return {
    name: 'dnsnat',
    client: c,
    gateway: g,
    site: s,
    target: proxy,
    daemonPids: () => pids,
    clientDaemon,
    gatewayDaemon,
    clientKey: kc.publicKey,
  };
}

export async function wireguardGoPath(lab: Lab, keyDir: string): Promise<Path> {
  const { c, g, s } = triple(lab, 'w');
  gatewayNft(lab, g, true);
  const env = { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' };
  const keys = { c: native.generateKeypair(), g: native.generateKeypair() };
  const dev = wireguardGoDevices();
  for (const [ns, role] of [
    [c, 'c'],
    [g, 'g'],
  ] as const) {
    const file = join(keyDir, `wg-${role}.key`);
    writeFileSync(file, `${keys[role].privateKey}\n`, { mode: 0o600 });
    nsExecEnv(ns, 'wireguard-go', [dev[role]], env);
    const peer =
      role === 'c'
        ? [
            'peer',
            keys.g.publicKey,
            'endpoint',
            '198.18.0.1:51820',
            'allowed-ips',
            '100.64.0.1/32,100.96.0.0/11',
          ]
        : ['peer', keys.c.publicKey, 'allowed-ips', '100.64.0.2/32'];
    const listen = role === 'g' ? ['listen-port', '51820'] : [];
    lab.exec(ns, 'wg', ['set', dev[role], 'private-key', file, ...listen, ...peer]);
    lab.exec(ns, 'ip', ['addr', 'add', role === 'c' ? '100.64.0.2/32' : '100.64.0.1/32', 'dev', dev[role]]);
    lab.exec(ns, 'ip', ['link', 'set', dev[role], 'mtu', String(MTU), 'up']);
  }
  lab.exec(c, 'ip', ['route', 'add', '100.96.0.0/11', 'dev', dev.c]);
  lab.exec(c, 'ip', ['route', 'add', '100.64.0.1/32', 'dev', dev.c]);
  lab.exec(g, 'ip', ['route', 'add', '100.64.0.2/32', 'dev', dev.g]);
  nsExec(c, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', '100.96.0.1'], 15_000);
  return {
    name: 'wireguard-go',
    client: c,
    gateway: g,
    site: s,
    target: '100.96.0.1',
    daemonPids: () => [...pidsIn(c, 'wireguard-go'), ...pidsIn(g, 'wireguard-go')],
  };
}

export async function kernelPath(lab: Lab): Promise<Path> {
  const { c, g, s } = triple(lab, 'k');
  gatewayNft(lab, g, true);
  lab.exec(c, 'ip', ['route', 'add', '100.96.0.0/11', 'via', '198.18.0.1']);
  nsExec(c, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', '100.96.0.1'], 15_000);
  await sleep(0);
  return { name: 'kernel', client: c, gateway: g, site: s, target: '100.96.0.1', daemonPids: () => [] };
}

/** wireguard-go's device names for this run; unique, since their sockets are shared between namespaces. */
function wireguardGoDevices(): { c: string; g: string } {
  return { c: `wgb${process.pid.toString(36)}c`, g: `wgb${process.pid.toString(36)}g` };
}

/** Removes the control sockets a killed wireguard-go leaves in /var/run/wireguard. */
export function removeWireguardGoSockets(): void {
  for (const name of Object.values(wireguardGoDevices()))
    rmSync(`/var/run/wireguard/${name}.sock`, { force: true });
}

function nsExecEnv(ns: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): void {
  execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { env, stdio: 'ignore', timeout: 10_000 });
}

/** A temporary directory for key files, removed by the returned function. */
export function keyDirectory(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'dnsnat-bench-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
