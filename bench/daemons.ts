// The real daemons in network namespaces: `dnsnat gateway` and `dnsnat client` (TypeScript state machine and
// policy over the Rust tunnels, as a user runs them) between a client, a gateway and a site namespace, the site
// with dnsmasq answering every `*.bench.example` name and an HTTP server. Used by the connection-setup and the
// daemon-memory benchmarks; `inLab` removes everything afterwards, also on failure.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../__test__/support/netns.js';
import native from '../ts/native.js';
import { nsExec, sleep } from './lib.js';
import { keyDirectory, removeWireguardGoSockets } from './topology.js';

const fixtures = join(__dirname, '..', '__test__', 'fixtures');
const cli = join(__dirname, '..', 'dist', 'cli', 'main.js');

/** One name resolved through the stub and fetched over HTTP: the WireGuard handshake, done before measuring. */
const WARM = `
const {Resolver}=require('node:dns').promises;const http=require('node:http');
const r=new Resolver({timeout:3000,tries:3});r.setServers(['100.100.111.1']);
r.resolve4('warm.bench.example').then(([ip])=>new Promise((ok,fail)=>{
const q=http.get({host:ip,port:8080,path:'/',agent:false,timeout:10000},(res)=>{res.resume();res.on('end',ok)});
q.on('error',fail);q.on('timeout',()=>q.destroy(new Error('timeout')));})).catch(e=>{console.error(e.message);process.exit(1)});`;

const pidFiles: string[] = [];

export function site(lab: Lab, s: string, answer: string): void {
  const pidFile = `/tmp/dnsnat-bench-${s}.pid`;
  pidFiles.push(pidFile);
  lab.node(s, join(fixtures, 'site-node.cjs'), {});
  lab.exec(s, 'dnsmasq', [
    '--no-resolv',
    '--no-hosts',
    '--bind-interfaces',
    '--listen-address=198.18.2.2',
    `--pid-file=${pidFile}`,
    `--address=/bench.example/${answer}`,
  ]);
}

/** The real `dnsnat gateway` and `dnsnat client` daemons, running in namespaces of `lab`. */
export interface DnsnatDaemons {
  client: string;
  gateway: string;
  clientPid: number;
  gatewayPid: number;
  clientSocket: string;
  gatewaySocket: string;
}

/**
 * Client, gateway and site namespaces; the site runs dnsmasq (every `*.bench.example` name is the site) and
 * an HTTP server on 8080; the daemons serve `*.bench.example` as resource `web`. Returns once both answer
 * `dnsnat status` and one name has been through the tunnel (so the WireGuard handshake is done).
 */
/**
 * `limits`: extra YAML for the client's and the gateway's `limits:`. The memory measurement sets every looked-up
 * name up at once, which the client's default look-ahead budget and the gateway's per-client control and
 * resolution shares (made to keep one client from costing the others) would spread over minutes.
 */
export async function startDnsnatDaemons(
  lab: Lab,
  dir: string,
  limits: { client?: string; gateway?: string } = {},
): Promise<DnsnatDaemons> {
  const c = lab.netns('lc');
  const g = lab.netns('lg');
  const s = lab.netns('ls');
  lab.link(c, ['198.18.0.2/24'], g, ['198.18.0.1/24']);
  lab.link(g, ['198.18.2.1/24'], s, ['198.18.2.2/24']);
  lab.exec(s, 'ip', ['route', 'add', 'default', 'via', '198.18.2.1']);
  lab.exec(c, 'ip', ['route', 'add', '198.18.2.0/24', 'via', '198.18.0.1']);
  site(lab, s, '198.18.2.2');
  const kc = native.generateKeypair();
  const kg = native.generateKeypair();
  const clientSocket = join(dir, 'client.sock');
  const gatewaySocket = join(dir, 'gateway.sock');
  writeFileSync(
    join(dir, 'gateway.yaml'),
    [
      `privateKey: ${kg.privateKey}`,
      'listen: "0.0.0.0:51820"',
      'tunnel: { ipv4: 100.64.0.1 }',
      ...(limits.gateway ? [`limits: { ${limits.gateway} }`] : []),
      'nameservers: [198.18.2.2]',
      'resources:',
      '  - { id: web, pattern: "*.bench.example", ipStack: ipv4 }',
      'clients:',
      `  - { id: bench, publicKey: ${kc.publicKey}, tunnelIps: [100.64.0.2], resources: [web] }`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'client.yaml'),
    [
      `privateKey: ${kc.privateKey}`,
      'tunnel: { ipv4: 100.64.0.2 }',
      'upstreamDns: [198.18.2.2]',
      `statusSocket: ${clientSocket}`,
      ...(limits.client ? [`limits: { ${limits.client} }`] : []),
      'gateways:',
      `  - { id: gw1, endpoint: "198.18.0.1:51820", publicKey: ${kg.publicKey} }`,
      'resources:',
      '  - { id: web, pattern: "*.bench.example", gateway: gw1, ipStack: ipv4 }',
      '',
    ].join('\n'),
  );
  const daemon = (ns: string, args: string[]) => lab.node(ns, join(fixtures, 'daemon.cjs'), { args });
  // daemon.cjs prints the pid of the `dnsnat` process it runs as its first line.
  const pidOf = async (p: ReturnType<typeof daemon>) =>
    (await p.waitFor<{ pid?: number }>((l) => typeof l.pid === 'number', 10_000, 'daemon pid')).pid as number;
  const gatewayPid = await pidOf(
    daemon(g, ['gateway', '-c', join(dir, 'gateway.yaml'), '-s', gatewaySocket]),
  );
  const clientPid = await pidOf(daemon(c, ['client', '-c', join(dir, 'client.yaml')]));
  for (let i = 0; ; i++) {
    try {
      nsExec(c, process.execPath, [cli, 'status', '--socket', clientSocket], 5_000);
      nsExec(g, process.execPath, [cli, 'status', '--socket', gatewaySocket], 5_000);
      break;
    } catch (e) {
      if (i > 100) throw e;
      await sleep(100);
    }
  }
  nsExec(c, process.execPath, ['-e', WARM], 30_000);
  return { client: c, gateway: g, clientPid, gatewayPid, clientSocket, gatewaySocket };
}

/** `dnsnat status --json` of a daemon. */
export function daemonStatus(ns: string, socket: string): Record<string, unknown> {
  return JSON.parse(nsExec(ns, process.execPath, [cli, 'status', '--json', '--socket', socket], 30_000));
}

/**
 * Runs `f` with a lab of its own and a directory for the daemons' files; removes the namespaces, wireguard-go's
 * sockets, the keys and dnsmasq's pid files afterwards, also when `f` fails.
 */
export async function inLab<T>(
  label: string,
  f: (lab: Lab, dir: string, keyDir: string) => Promise<T>,
): Promise<T> {
  const lab = new Lab(label);
  const keys = keyDirectory();
  const dir = join(keys.dir, 'daemons');
  mkdirSync(dir);
  try {
    return await f(lab, dir, keys.dir);
  } finally {
    lab.cleanup();
    removeWireguardGoSockets();
    keys.remove();
    for (const f of pidFiles.splice(0)) rmSync(f, { force: true });
  }
}
