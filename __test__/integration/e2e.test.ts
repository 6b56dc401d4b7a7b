// The product end to end: the real `dnsnat gateway` and `dnsnat client`
// daemons in their own namespaces, dnsmasq as the site's DNS server, and
// curl, ping and Node sockets as applications, over IPv4 and IPv6. Root.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { tunnelLoss } from '../support/loss.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';

const fixtures = join(__dirname, '..', 'fixtures');
const cli = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const run = canRunPrivileged('end-to-end suite');

type Domain = {
  domain: string;
  state: string;
  sends: number;
  resourceId: string;
  gatewayId: string;
  failureReason?: string;
  failureDetail?: string;
};
type Status = { role: string; domains: Domain[]; counters: Record<string, number> };

async function until<T>(fn: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

describe.runIf(run)('dnsnat end to end', () => {
  const lab = new Lab('e2e');
  let c = '';
  let g = '';
  let s = '';
  let dir = '';
  let netnsEtc = '';
  let bigSha = '';
  let client: JsonLineProcess;
  let gateway: JsonLineProcess;
  const kc = native.generateKeypair();
  const kg = native.generateKeypair();

  const status = (): Status =>
    JSON.parse(
      lab.exec(c, process.execPath, [cli, 'status', '--json', '--socket', join(dir, 'client.sock')]),
    );
  const domain = (name: string) => status().domains.find((d) => d.domain === name);
  const resolve = (names: string[], family: 4 | 6 = 4): Record<string, string[] | string> =>
    JSON.parse(
      lab.exec(c, process.execPath, [
        '-e',
        `const {Resolver}=require('node:dns').promises;const r=new Resolver({timeout:2000,tries:2});r.setServers(['100.100.111.1']);` +
          `Promise.all(${JSON.stringify(names)}.map(n=>r.resolve${family}(n).then(a=>[n,a],e=>[n,e.code]))).then(x=>console.log(JSON.stringify(Object.fromEntries(x))))`,
      ]),
    );
  const curl = (url: string, extra: string[] = []) =>
    lab.exec(c, 'sh', ['-c', `curl -s --max-time 20 ${extra.join(' ')} '${url}'; echo " exit=$?"`]).trim();

  function startGateway(): JsonLineProcess {
    return lab.node(g, join(fixtures, 'daemon.cjs'), {
      args: ['gateway', '-c', join(dir, 'gateway.yaml'), '-s', join(dir, 'gateway.sock')],
    });
  }
  function startClient(): JsonLineProcess {
    return lab.node(c, join(fixtures, 'daemon.cjs'), { args: ['client', '-c', join(dir, 'client.yaml')] });
  }
  async function gatewayReady(what: string): Promise<void> {
    await until(
      () => {
        try {
          return lab
            .exec(g, process.execPath, [cli, 'status', '--socket', join(dir, 'gateway.sock')])
            .includes('gateway');
        } catch {
          return false;
        }
      },
      15_000,
      what,
    );
  }
  async function clientReady(): Promise<void> {
    await until(
      () => {
        try {
          return status().role === 'client';
        } catch {
          return false;
        }
      },
      15_000,
      'the client daemon',
    );
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dnsnat-e2e-'));
    c = lab.netns('c');
    g = lab.netns('g');
    s = lab.netns('s');
    lab.link(c, ['198.18.0.2/24'], g, ['198.18.0.1/24']);
    lab.link(g, ['198.18.2.1/24', '2001:db8:2::1/64'], s, ['198.18.2.2/24', '2001:db8:2::2/64']);
    lab.exec(s, 'ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:2::1']);
    lab.exec(s, 'ip', ['route', 'add', 'default', 'via', '198.18.2.1']);
    // The client reaches its upstream resolver (dnsmasq at the site) directly: the gateway's host is also a
    // router between the two networks. (A gateway on a host that does not forward forwards the tunnel only.)
    lab.exec(c, 'ip', ['route', 'add', '198.18.2.0/24', 'via', '198.18.0.1']);
    lab.exec(g, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);

    const site = lab.node(s, join(fixtures, 'site-node.cjs'), {});
    bigSha = String((await site.waitFor((l) => l.ready === true, 15_000, 'site')).bigSha256);
    const names = Array.from({ length: 100 }, (_, i) => `--address=/n${i}.corp.example/198.18.2.2`);
    lab.exec(s, 'dnsmasq', [
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      '--listen-address=198.18.2.2',
      `--pid-file=${join(dir, 'dnsmasq.pid')}`,
      '--host-record=app.corp.example,198.18.2.2,2001:db8:2::2',
      '--host-record=other.secret.example,198.18.2.2',
      '--txt-record=empty.corp.example,"no addresses here"',
      ...names,
    ]);

    writeFileSync(
      join(dir, 'gateway.yaml'),
      [
        `privateKey: ${kg.privateKey}`,
        'listen: "0.0.0.0:51820"',
        'tunnel: { ipv4: 100.64.0.1, ipv6: "fd00:2021:1111::1" }',
        'nameservers: [198.18.2.2]',
        'masquerade: true',
        'resources:',
        '  - { id: web, pattern: "*.corp.example", ipStack: dual }',
        '  - { id: secret, pattern: "*.secret.example", ipStack: ipv4 }',
        'clients:',
        `  - { id: alice, publicKey: ${kc.publicKey}, tunnelIps: [100.64.0.2, "fd00:2021:1111::2"], resources: [web] }`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'client.yaml'),
      [
        `privateKey: ${kc.privateKey}`,
        'tunnel: { ipv4: 100.64.0.2, ipv6: "fd00:2021:1111::2" }',
        'upstreamDns: [198.18.2.2]',
        `stateFile: ${join(dir, 'client-state.json')}`,
        `statusSocket: ${join(dir, 'client.sock')}`,
        'gateways:',
        `  - { id: gw1, endpoint: "198.18.0.1:51820", publicKey: ${kg.publicKey} }`,
        'resources:',
        '  - { id: web, pattern: "*.corp.example", gateway: gw1, ipStack: dual }',
        '  - { id: secret, pattern: "*.secret.example", gateway: gw1, ipStack: ipv4 }',
        '',
      ].join('\n'),
    );
    netnsEtc = join('/etc/netns', c);
    mkdirSync(netnsEtc, { recursive: true });
    writeFileSync(join(netnsEtc, 'resolv.conf'), 'nameserver 100.100.111.1\n');

    gateway = startGateway();
    await gatewayReady('the gateway daemon');
    client = startClient();
    await clientReady();
  }, 60_000);

  afterAll(() => {
    lab.cleanup();
    if (netnsEtc) rmSync(netnsEtc, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the first connection after the first query succeeds: buffered, not lost (TCP over IPv4)', () => {
    const before = status().counters.client_flushed ?? 0;
    // One curl, no retry: its SYN waits in the key's buffer until the gateway answers.
    // The site listens on both families, so it sees the v4-mapped form.
    expect(curl('http://app.corp.example:8080/', ['-4'])).toBe(
      'hello from site; you are ::ffff:198.18.2.1\n exit=0',
    );
    expect(status().counters.client_flushed ?? 0).toBeGreaterThan(before);
    expect(domain('app.corp.example')?.state).toBe('confirmed');
  });

  it('TCP over IPv6 through an IPv6 proxy IP', () => {
    const out = curl('http://app.corp.example:8080/', ['-6']);
    expect(out).toMatch(/^hello from site; you are 2001:db8:2::1\n exit=0$/);
  });

  it('UDP and ICMP echo through the NAT, both families', () => {
    const [v4] = resolve(['app.corp.example'])['app.corp.example'] as string[];
    const [v6] = resolve(['app.corp.example'], 6)['app.corp.example'] as string[];
    for (const ip of [v4, v6]) {
      const out = lab.exec(c, process.execPath, [
        '-e',
        `const s=require('node:dgram').createSocket('${ip?.includes(':') ? 'udp6' : 'udp4'}');` +
          `s.on('message',m=>{console.log(m.toString());process.exit(0)});s.send('ping-udp',7007,'${ip}');setTimeout(()=>process.exit(1),5000)`,
      ]);
      expect(out.trim()).toBe('ping-udp');
    }
    expect(lab.exec(c, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', v4 as string])).toMatch(/2 received/);
    expect(lab.exec(c, 'ping', ['-6', '-c', '2', '-i', '0.2', '-W', '3', v6 as string])).toMatch(
      /2 received/,
    );
  });

  it('a name without records fails once and is not retried by 100 other queries, only by its own', async () => {
    resolve(['empty.corp.example']);
    const failed = await until(
      () => {
        const d = domain('empty.corp.example');
        return d?.state === 'failed' ? d : undefined;
      },
      10_000,
      'empty.corp.example to fail',
    );
    expect(failed.sends).toBe(1);
    // The gateway's reason reaches `dnsnat status`. dnsmasq (--no-resolv) answers REFUSED for A and AAAA of a
    // name it holds only a TXT record for, which the gateway's resolver reports as `error`.
    expect(failed).toMatchObject({ failureReason: 'inactive', failureDetail: 'error' });
    const text = lab.exec(c, process.execPath, [cli, 'status', '--socket', join(dir, 'client.sock')]);
    expect(text).toMatch(/empty\.corp\.example +failed +web@gw1 sends=1 \(inactive: error\)/);
    resolve(Array.from({ length: 100 }, (_, i) => `q${i}.public.example`));
    resolve(['app.corp.example']);
    await sleep(500);
    expect(domain('empty.corp.example')?.sends).toBe(1);
    resolve(['empty.corp.example']);
    await until(
      () => (domain('empty.corp.example')?.sends ?? 0) === 2,
      10_000,
      'a second AssignedIps on its own query',
    );
  });

  it('a resource the client is not allowed ends failed, and traffic to it goes nowhere', async () => {
    resolve(['other.secret.example']);
    const failed = await until(
      () => {
        const d = domain('other.secret.example');
        return d?.state === 'failed' ? d : undefined;
      },
      10_000,
      'other.secret.example to fail',
    );
    expect(failed).toMatchObject({ failureReason: 'inactive', failureDetail: 'resource-not-allowed' });
    expect(curl('http://other.secret.example:8080/', ['--connect-timeout', '3'])).not.toContain('hello');
  });

  it('only proxy IPs enter the tunnel: other destinations routed at the device are dropped', () => {
    lab.exec(c, 'ip', ['route', 'add', '198.18.9.0/24', 'dev', 'dnsnat0']);
    const before = status().counters.drop_no_peer_for_destination ?? 0;
    lab.exec(c, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '198.18.9.9'], { allowFail: true });
    expect(status().counters.drop_no_peer_for_destination ?? 0).toBeGreaterThanOrEqual(before + 2);
  });

  it('an unknown client key gets nothing back from the gateway', async () => {
    const stranger = native.generateKeypair();
    const p = lab.node(c, join(fixtures, 'tunnel-node.cjs'), {
      tunnel: {
        name: 'dnsnat-x',
        privateKey: stranger.privateKey,
        ipv4: '100.64.0.99',
        routes: ['100.127.0.0/24'],
      },
      peers: [{ publicKey: kg.publicKey, endpoint: '198.18.0.1:51820', allowedIps: ['100.127.0.0/24'] }],
    });
    await p.waitFor((l) => l.ready === true);
    lab.exec(c, 'ping', ['-c', '2', '-i', '0.3', '-W', '1', '-I', 'dnsnat-x', '100.127.0.1'], {
      allowFail: true,
    });
    p.send({ counters: true });
    const line = await p.waitFor<{ counters?: Record<string, number> }>((l) => l.counters !== undefined);
    expect(line.counters?.udp_tx_datagrams).toBeGreaterThan(0);
    expect(line.counters?.udp_rx_datagrams).toBe(0);
    p.send({ stop: true });
  });

  it('with 30% loss each way, 100 names queried by applications all reach confirmed; with 10%, 10 MiB arrive intact', async () => {
    let undo = tunnelLoss(lab, [c, g], 30);
    try {
      const names = Array.from({ length: 100 }, (_, i) => `n${i}.corp.example`);
      // Applications keep asking for names that do not work yet.
      await until(
        () => {
          const confirmed = new Set(
            status()
              .domains.filter((d) => d.state === 'confirmed')
              .map((d) => d.domain),
          );
          const missing = names.filter((n) => !confirmed.has(n));
          if (missing.length === 0) return true;
          resolve(missing);
          return false;
        },
        90_000,
        '100 names confirmed under loss',
      );
      const sends = status()
        .domains.filter((d) => names.includes(d.domain))
        .map((d) => d.sends);
      // Bounded: nowhere near a storm (each name was queried at most a few dozen times).
      expect(Math.max(...sends)).toBeLessThan(60);
      // TCP itself, not the tunnel, gives up on a bulk transfer at 30% loss each way: with GRO at the receiver
      // (one ACK per coalesced burst) a lost ACK is often the only one, and a run of timeouts backs off past
      // any sane deadline (seen: 92 KB in 25 s, no drop counted anywhere but the loss rule's). 10% still loses
      // hundreds of datagrams of the transfer and its ACKs.
      undo();
      undo = tunnelLoss(lab, [c, g], 10);
      const sha = lab.exec(c, 'sh', [
        '-c',
        "curl -s --max-time 120 -4 http://n7.corp.example:8080/big | sha256sum | cut -d' ' -f1",
      ]);
      expect(sha.trim()).toBe(bigSha);
    } finally {
      undo();
    }
  }, 240_000);

  it('a gateway restarted mid-flow: the client recovers on its next query', async () => {
    gateway.child.kill('SIGTERM');
    await gateway.exited;
    gateway = startGateway();
    await gatewayReady('the restarted gateway');
    // The restarted gateway knows no mappings; the next query sets them up again.
    const out = await until(
      () => {
        const r = curl('http://app.corp.example:8080/', ['-4', '--connect-timeout', '3']);
        return r.startsWith('hello') ? r : undefined;
      },
      30_000,
      'a request through the restarted gateway',
    );
    expect(out).toContain('hello from site');
  }, 60_000);

  it('SIGHUP reloads the client: a removed resource is forgotten and its names go upstream', async () => {
    resolve(['x.secret.example']);
    await until(() => domain('x.secret.example'), 10_000, 'x.secret.example tracked');
    const yaml = readFileSync(join(dir, 'client.yaml'), 'utf8');
    writeFileSync(join(dir, 'client.yaml'), yaml.replace(/^ {2}- \{ id: secret.*\n/m, ''));
    try {
      client.child.kill('SIGHUP');
      await until(
        () => !status().domains.some((d) => d.resourceId === 'secret'),
        10_000,
        'secret entries cleared',
      );
      // Now an ordinary name: dnsmasq's real answer, not a proxy IP.
      expect(resolve(['other.secret.example'])['other.secret.example']).toEqual(['198.18.2.2']);
      expect(domain('app.corp.example')).toBeDefined();
    } finally {
      writeFileSync(join(dir, 'client.yaml'), yaml);
      client.child.kill('SIGHUP');
    }
  });

  it('writes a new name to the state file within a moment, without a restart', async () => {
    const name = 'fresh-state.corp.example';
    const ips = resolve([name])[name];
    expect(ips?.length).toBeGreaterThan(0);
    await until(
      () => readFileSync(join(dir, 'client-state.json'), 'utf8').includes(name),
      3_000,
      'the state file names the new domain',
    );
  });

  it('a client restart keeps its proxy IPs', async () => {
    const before = resolve(['app.corp.example'])['app.corp.example'];
    client.child.kill('SIGTERM');
    await client.exited;
    client = startClient();
    await clientReady();
    expect(resolve(['app.corp.example'])['app.corp.example']).toEqual(before);
  }, 60_000);
});
