// Resident memory. Two measurements:
// - measureDaemonMemory: the real `dnsnat client` and `dnsnat gateway` daemons with 10,000 tracked domains
//   (bench/daemons.ts), set up through the stub and the state machine as an application's queries do it.
// - measureMemory: the gateway's bare Tunnel with 100,000 NAT sessions: two clients (a NAT table holds at most
//   65,536 sessions per client by default), each sending one small UDP datagram from 50,000 local ports to a
//   proxy IP mapped to the site, which drops them. Every client port is a UDP session (the mapping is endpoint-
//   independent; idle limit 120 s, far longer than the measurement). RSS is read from /proc/<pid>/status before
//   the flood and once the gateway counts every session.
import { join } from 'node:path';
import type { Lab } from '../__test__/support/netns.js';
import native from '../ts/native.js';
import { daemonStatus, inLab, startDnsnatDaemons } from './daemons.js';
import { call, counters, log, nsExec, nsRun, rssBytes, sleep } from './lib.js';
import { type DnsnatPath, MTU, SITE } from './topology.js';

const PER_CLIENT = 50_000;
const FIRST_PORT = 10_000;

// Sends one datagram to port 9 of `target` from each local port in [from, to), a hundred sockets at a
// time (the NAT is endpoint-independent: a session is a client port and a proxy IP, whatever the remote port).
const FLOOD = `
const dgram = require('node:dgram');
const [target, from, to] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
const payload = Buffer.alloc(16);
const one = (port) => new Promise((resolve) => {
  const s = dgram.createSocket('udp4');
  s.on('error', () => { s.close(); resolve(); });
  s.bind(port, () => s.send(payload, 9, target, () => { s.close(); resolve(); }));
});
(async () => {
  for (let p = from; p < to; p += 100) {
    const batch = [];
    for (let q = p; q < Math.min(p + 100, to); q++) batch.push(one(q));
    await Promise.all(batch);
    await new Promise((r) => setTimeout(r, 5)); // let the gateway keep up: its socket buffer is small
  }
})();
`;

export interface MemoryResult {
  sessions: number;
  sessionsBefore: number;
  rssBefore: number;
  rssWithSessions: number;
  bytesPerSession: number;
}

export async function measureMemory(lab: Lab, path: DnsnatPath): Promise<MemoryResult> {
  const g = path.gateway;
  const pid = path.gatewayDaemon.child.pid as number;
  // The site drops the flood without answering.
  lab.exec(path.site, 'nft', [
    'add table ip flood; add chain ip flood in { type filter hook input priority 0; };' +
      ' add rule ip flood in udp dport 9 drop',
  ]);
  // A second client, a plain tunnel in a namespace of its own.
  const c2 = lab.netns('dc2');
  lab.link(c2, ['198.18.1.2/24'], g, ['198.18.1.1/24']);
  const k2 = native.generateKeypair();
  const gatewayPublic = (
    path.gatewayDaemon.lines.find((l) => (l as { ready?: boolean }).ready) as {
      publicKey: string;
    }
  ).publicKey;
  await call(path.gatewayDaemon, 'addPeer', {
    publicKey: k2.publicKey,
    allowedIps: ['100.64.0.3/32'],
    nat: true,
  });
  await call(path.gatewayDaemon, 'setMapping', k2.publicKey, '100.96.0.1', { realIp: SITE });
  lab.exec(g, 'ip', ['route', 'add', '100.64.0.3/32', 'dev', 'dnsnat-g']);
  const client2 = lab.node(c2, join(__dirname, 'tunnel-daemon.cjs'), {
    tunnel: {
      name: 'dnsnat-c2',
      privateKey: k2.privateKey,
      ipv4: '100.64.0.3',
      routes: ['100.96.0.0/11'],
      mtu: MTU,
    },
    peers: [{ publicKey: gatewayPublic, endpoint: '198.18.1.1:51820', allowedIps: ['100.96.0.0/11'] }],
  });
  await client2.waitFor((l) => l.ready === true, 10_000, 'second client ready');
  nsExec(c2, 'ping', ['-c', '1', '-W', '3', '100.96.0.1'], 10_000);
  await sleep(500);

  const flooders: Array<[string, string, string]> = [
    [path.client, path.target, path.clientKey],
    [c2, '100.96.0.1', k2.publicKey],
  ];
  const perClient = async () => {
    const n: number[] = [];
    for (const [, , key] of flooders) n.push(Number(await call(path.gatewayDaemon, 'natSessions', key)));
    return n;
  };
  const before = await perClient();
  const sessionsBefore = before.reduce((a, b) => a + b, 0);
  const rssBefore = rssBytes(pid);
  let total = 0;
  for (let attempt = 0; attempt < 5; attempt++) {
    // Datagrams lost in a socket buffer are sent again; sessions that exist are only refreshed.
    const have = await perClient();
    for (const [k, [ns, target]] of flooders.entries()) {
      // A port or two may be taken by another socket: 99.9 % is enough.
      if ((have[k] ?? 0) >= (before[k] ?? 0) + PER_CLIENT * 0.999) continue;
      await nsRun(
        ns,
        process.execPath,
        ['-e', FLOOD, target, String(FIRST_PORT), String(FIRST_PORT + PER_CLIENT)],
        60_000,
      );
    }
    await sleep(500);
    const n = await perClient();
    total = n.reduce((a, b) => a + b, 0);
    log(`memory: ${n.join(' + ')} NAT sessions after flood ${attempt + 1}`);
    if (total >= sessionsBefore + 2 * PER_CLIENT * 0.999) break;
  }
  const rssWithSessions = rssBytes(pid);
  if (process.env.BENCH_DEBUG) {
    const nz = (c: Record<string, number>) => Object.entries(c).filter(([, v]) => v !== 0);
    log(`client2 ${JSON.stringify(nz((await counters(client2)).counters))}`);
    log(`client1 ${JSON.stringify(nz((await counters(path.clientDaemon)).counters))}`);
    log(`gateway ${JSON.stringify(nz((await counters(path.gatewayDaemon)).counters))}`);
  }
  return {
    sessions: total,
    sessionsBefore,
    rssBefore,
    rssWithSessions,
    bytesPerSession: (rssWithSessions - rssBefore) / (total - sessionsBefore),
  };
}

/** Resolves names `<prefix><i>.bench.example`, i < count, through `server`, `concurrency` at a time. */
const RESOLVE_MANY = `
const {Resolver}=require('node:dns').promises;
const [server,prefix,count,concurrency]=process.argv.slice(1).map((x,i)=>i<2?x:Number(x));
const r=new Resolver({timeout:3000,tries:3});r.setServers([server]);
let next=0,failed=0;
const worker=async()=>{while(next<count){const i=next++;try{await r.resolve4(prefix+i+'.bench.example')}catch{failed++}}};
Promise.all(Array.from({length:concurrency},worker)).then(()=>console.log(JSON.stringify({failed})));
`;

export interface DaemonMemory {
  /** Domains the client tracks at the end, the one warm-up name included. */
  domains: number;
  /** Of those, confirmed entries of the client's state machine, and bindings the gateway holds. */
  confirmed: number;
  gatewayBindings: number;
  client: { rssBefore: number; rssAfter: number };
  gateway: { rssBefore: number; rssAfter: number };
}

/**
 * Resident memory of the real daemons (`dnsnat client`, `dnsnat gateway`: TypeScript state machine and policy
 * over the Rust tunnels, as a user runs them) once the client tracks `domains` domains: each name is queried
 * once through the stub, which allocates its proxy IPs, and the state machine sets up its NAT with the gateway,
 * which resolves it (dnsmasq at the site) and installs the mapping. "Before" is after the one warm-up name, so
 * `domains - 1` names are added; 10,000 in all is the gateway's default share per client (`bindingsPerClient`),
 * beyond which it evicts the least recently used. Every name is set up as it is looked up: the client's look-ahead
 * budget and the gateway's per-client control and resolution shares are raised for this run.
 */
export function measureDaemonMemory(domains: number): Promise<DaemonMemory> {
  return inLab('mem', async (lab, dir) => {
    const d = await startDnsnatDaemons(lab, dir, {
      client: 'setupsAheadPerSecond: 100000',
      gateway: 'controlPerSecond: 100000, controlBurst: 100000, pendingResolutionsPerClient: 10000',
    });
    await sleep(1_000);
    const clientBefore = rssBytes(d.clientPid);
    const gatewayBefore = rssBytes(d.gatewayPid);
    const added = domains - 1;
    const status = () =>
      daemonStatus(d.client, d.clientSocket) as {
        domains: Array<{ domain: string; state: string }>;
        counters: Record<string, number>;
      };
    const confirmedIn = (x: ReturnType<typeof status>) =>
      x.domains.filter((e) => e.state === 'confirmed').length;
    let s = status();
    // Every name is asked for, and asked again while some are not set up yet, as applications do (the answers
    // live 1 s): a burst this fast overflows the bounded event queues on both sides, which drop and count
    // rather than grow, and a name's next query is what sets it up.
    for (let pass = 1; pass <= 4 && confirmedIn(s) < domains; pass++) {
      log(
        `memory: querying ${added.toLocaleString('en-US')} names through the real client daemon (pass ${pass})`,
      );
      await nsRun(
        d.client,
        process.execPath,
        ['-e', RESOLVE_MANY, '100.100.111.1', 'm', String(added), '64'],
        300_000,
      );
      // The last names' DomainStatus may still be on its way.
      s = status();
      for (let i = 0; i < 20 && confirmedIn(s) < domains; i++) {
        await sleep(500);
        s = status();
      }
    }
    const confirmed = confirmedIn(s);
    if (s.domains.length !== domains || confirmed !== domains) {
      const other = s.domains.filter((e) => e.state !== 'confirmed').slice(0, 5);
      throw new Error(
        `${confirmed} of ${s.domains.length} tracked domains confirmed, expected ${domains}; ` +
          `others ${JSON.stringify(other)}`,
      );
    }
    const g = daemonStatus(d.gateway, d.gatewaySocket) as { mappings: unknown[] };
    await sleep(1_000);
    return {
      domains,
      confirmed,
      gatewayBindings: g.mappings.length,
      client: { rssBefore: clientBefore, rssAfter: rssBytes(d.clientPid) },
      gateway: { rssBefore: gatewayBefore, rssAfter: rssBytes(d.gatewayPid) },
    };
  });
}
