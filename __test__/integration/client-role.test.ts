// The client role of the tunnel end to end, driven by hand (the TypeScript
// client automates the same steps): the stub on the sentinel answers resource
// names with proxy IPs and forwards the rest upstream; the first connection
// to a proxy IP waits in the key's buffer until the gate opens, then goes out
// in order and succeeds without an application retry. Real namespaces,
// tunnel, gateway NAT and curl. Root.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';
import { call, fixtures, siteTopology, startNatGateway } from '../support/topology.js';

const run = canRunPrivileged('client role integration tests');

type Event = {
  kind: string;
  domain?: string;
  matches?: Array<{ gatewayId: string; resourceId: string; proxyIps: string[] }>;
  gatewayId?: string;
  resourceId?: string;
  count?: number;
};

const lookup = (server: string, name: string, type: 'resolve4' | 'resolve6' | 'reverse') =>
  `const {Resolver}=require('node:dns').promises;const r=new Resolver({timeout:3000,tries:1});` +
  `r.setServers(['${server}']);r.${type}('${name}').then(a=>console.log(JSON.stringify(a)),e=>console.log(JSON.stringify({error:e.code})))`;

describe.runIf(run)('client role: stub DNS and gated first connection', () => {
  const lab = new Lab('cli');
  let c: string;
  let g: string;
  let s: string;
  let client: JsonLineProcess;
  let gateway: JsonLineProcess;
  let site: JsonLineProcess;
  const kc = native.generateKeypair();
  const kg = native.generateKeypair();
  let netnsEtc = '';

  beforeAll(async () => {
    ({ c, g, s } = siteTopology(lab));
    // The client reaches the site's DNS server directly (its upstream).
    lab.exec(c, 'ip', ['route', 'add', '198.18.2.0/24', 'via', '198.18.0.1']);
    lab.exec(s, 'ip', ['route', 'add', '198.18.0.0/24', 'via', '198.18.2.1']);
    // The site: an HTTP service, and dnsmasq as the upstream for names that
    // are not resources.
    site = lab.node(s, join(fixtures, 'http-server.cjs'), { host: '198.18.2.2', port: 8080, name: 'site' });
    await site.waitFor((l) => l.ready === true, 10_000, 'site ready');
    lab.exec(s, 'dnsmasq', [
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      '--listen-address=198.18.2.2',
      '--address=/public.example/198.18.2.77',
      `--pid-file=/tmp/dnsnat-${s}.pid`,
    ]);
    // Applications in the client namespace use the sentinel (ip netns exec
    // bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf).
    netnsEtc = join('/etc/netns', c);
    mkdirSync(netnsEtc, { recursive: true });
    writeFileSync(join(netnsEtc, 'resolv.conf'), 'nameserver 100.100.111.1\n');

    gateway = await startNatGateway(lab, g, kg.privateKey, kc.publicKey);
    client = lab.node(c, join(fixtures, 'tunnel-node.cjs'), {
      tunnel: {
        name: 'dnsnat-c',
        privateKey: kc.privateKey,
        ipv4: '100.64.0.2',
        client: {
          resources: [{ id: 'web', pattern: '*.corp.example', gateway: 'gw1', ipStack: 'ipv4' }],
          upstream: ['198.18.2.2'],
        },
      },
      peers: [
        {
          publicKey: kg.publicKey,
          endpoint: '198.18.0.1:51820',
          allowedIps: ['100.64.0.1/32', '100.96.0.0/11', 'fd00:2021:1111:8000::/107'],
          gatewayId: 'gw1',
        },
      ],
    });
    await client.waitFor((l) => l.ready === true, 10_000, 'client ready');
  });

  afterAll(() => {
    lab.cleanup();
    if (netnsEtc) rmSync(netnsEtc, { recursive: true, force: true });
    if (s) rmSync(`/tmp/dnsnat-${s}.pid`, { force: true });
  });

  it('answers a resource name with proxy IPs and reports the query with its matches', async () => {
    const out = JSON.parse(
      lab.exec(c, process.execPath, ['-e', lookup('100.100.111.1', 'App.Corp.Example', 'resolve4')]),
    );
    expect(out).toHaveLength(4);
    for (const ip of out) expect(ip).toMatch(/^100\.(9[6-9]|1[01]\d|12[0-7])\./);
    const ev = await client.waitFor<{ event?: Event }>((l) => l.event?.kind === 'dns-query');
    expect(ev.event?.domain).toBe('app.corp.example');
    expect(ev.event?.matches).toEqual([{ gatewayId: 'gw1', resourceId: 'web', proxyIps: out }]);
    // Same name, same addresses: proxy IPs are stable.
    const again = JSON.parse(
      lab.exec(c, process.execPath, ['-e', lookup('100.100.111.1', 'app.corp.example', 'resolve4')]),
    );
    expect(again).toEqual(out);
  });

  it('forwards other names to the upstream resolver unchanged and signals the query', async () => {
    const out = JSON.parse(
      lab.exec(c, process.execPath, ['-e', lookup('100.100.111.1', 'www.public.example', 'resolve4')]),
    );
    expect(out).toEqual(['198.18.2.77']);
    await client.waitFor<{ event?: Event }>(
      (l) => l.event?.kind === 'queries-seen' && (l.event.count ?? 0) >= 1,
    );
  });

  it('reports a repeated query only as a seen query, until a command may have changed something', async () => {
    // Two lookups 50 ms apart from one process: the second falls in a later batch than the first.
    const twice =
      `const {Resolver}=require('node:dns').promises;const r=new Resolver({timeout:3000,tries:1});` +
      `r.setServers(['100.100.111.1']);const n='repeat.corp.example';` +
      `r.resolve4(n).then(()=>new Promise(f=>setTimeout(f,50))).then(()=>r.resolve4(n))` +
      `.then(a=>console.log(JSON.stringify(a)),e=>console.log(JSON.stringify({error:e.code})))`;
    const isReport = (l: { event?: Event }) =>
      l.event?.kind === 'dns-query' && l.event.domain === 'repeat.corp.example';
    const before = client.lines.length;
    expect(JSON.parse(lab.exec(c, process.execPath, ['-e', twice]))).toHaveLength(4);
    const report = await client.waitFor<{ event?: Event }>(
      (l) => isReport(l) && client.lines.indexOf(l) >= before,
    );
    const at = client.lines.indexOf(report);
    await client.waitFor<{ event?: Event }>(
      (l) => l.event?.kind === 'queries-seen' && client.lines.indexOf(l) > at,
    );
    const reports = () => client.lines.slice(before).filter((l) => isReport(l as { event?: Event })).length;
    expect(reports()).toBe(1);
    // A command from JavaScript (here a gate) may follow a change of the state machine: the next query of every
    // domain is reported again.
    await call(client, 'gate', 'gw1', 'unrelated.corp.example', 'web', 'pass');
    lab.exec(c, process.execPath, ['-e', lookup('100.100.111.1', 'repeat.corp.example', 'resolve4')]);
    await client.waitFor<{ event?: Event }>((l) => isReport(l) && client.lines.indexOf(l) > at);
    expect(reports()).toBe(2);
  });

  it('holds the first connection until the gate opens, then delivers it without a retry', async () => {
    const [proxy] = JSON.parse(
      lab.exec(c, process.execPath, ['-e', lookup('100.100.111.1', 'api.corp.example', 'resolve4')]),
    ) as string[];
    // curl resolves through the stub and connects; its SYN waits in the buffer.
    const curl = lab.node(c, join(fixtures, 'run.cjs'), {
      cmd: 'curl',
      args: ['-s', '--max-time', '15', 'http://api.corp.example:8080/'],
    });
    const pending = await client.waitFor<{ event?: Event }>(
      (l) => l.event?.kind === 'pending-traffic' && l.event.domain === 'api.corp.example',
    );
    expect(pending.event).toMatchObject({ gatewayId: 'gw1', resourceId: 'web' });
    // What the TypeScript client does on DomainStatus active: map, pass, flush.
    await call(gateway, 'setMapping', kc.publicKey, proxy, { realIp: '198.18.2.2' });
    await call(client, 'gate', 'gw1', 'api.corp.example', 'web', 'pass');
    const flushed = (await call(client, 'flush', 'gw1', 'api.corp.example', 'web')) as number;
    expect(flushed).toBeGreaterThanOrEqual(1);
    const done = await curl.waitFor<{ exit?: number; stdout?: string }>(
      (l) => l.exit !== undefined,
      20_000,
      'curl',
    );
    expect(done.stdout).toBe('hello from site; you are 198.18.2.1\n');
    expect(done.exit).toBe(0);
  });

  it('discard drops what waits, and traffic to an unallocated proxy IP is counted, not sent', async () => {
    lab.exec(c, process.execPath, ['-e', lookup('100.100.111.1', 'gone.corp.example', 'resolve4')]);
    lab.exec(c, 'sh', ['-c', 'curl -s --max-time 1 http://gone.corp.example:8080/ || true']);
    expect(await call(client, 'discard', 'gw1', 'gone.corp.example', 'web')).toBeGreaterThanOrEqual(1);
    lab.exec(c, 'ping', ['-c', '1', '-W', '1', '100.127.0.1'], { allowFail: true });
    client.send({ counters: true });
    const line = await client.waitFor<{ counters?: Record<string, number> }>((l) => l.counters !== undefined);
    expect(line.counters?.client_drop_unknown_proxy_ip).toBeGreaterThanOrEqual(1);
  });

  it('exports a proxy-IP table that names every allocated domain', async () => {
    const table = JSON.parse((await call(client, 'exportProxyIps')) as string);
    const domains = table.entries.map((e: { domain: string }) => e.domain);
    expect(domains).toEqual(expect.arrayContaining(['app.corp.example', 'api.corp.example']));
  });
});
