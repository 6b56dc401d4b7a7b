// `dnsnat demo`: a client, a gateway and a site in three network namespaces,
// each a real process: the site runs a DNS server and an HTTP service, the
// gateway and the client are the real daemons, started through this CLI.
// Everything it creates is removed on exit, on an error, and on Ctrl-C.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateKeyPair } from '../keys.js';

type Say = (line: string) => void;

const CLI = join(__dirname, '..', 'cli', 'main.js');
const SITE = join(__dirname, 'site-main.js');

class Stage {
  readonly namespaces: string[] = [];
  readonly children: ChildProcess[] = [];
  readonly dirs: string[] = [];

  run(args: string[]): string {
    return execFileSync(args[0] as string, args.slice(1), {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  netns(name: string): string {
    this.run(['ip', 'netns', 'add', name]);
    this.namespaces.push(name);
    this.run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  link(a: string, aAddr: string[], b: string, bAddr: string[], tag: string): void {
    this.run([
      'ip',
      'link',
      'add',
      `${tag}a`,
      'netns',
      a,
      'type',
      'veth',
      'peer',
      'name',
      `${tag}b`,
      'netns',
      b,
    ]);
    for (const [ns, dev, addrs] of [
      [a, `${tag}a`, aAddr],
      [b, `${tag}b`, bAddr],
    ] as const) {
      for (const addr of addrs)
        this.run(['ip', '-n', ns, 'addr', 'add', addr, 'dev', dev, ...(addr.includes(':') ? ['nodad'] : [])]);
      this.run(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    }
  }

  /** Output of every process the demo started, shown only when something went wrong. */
  readonly logs = new Map<string, string[]>();

  spawnIn(ns: string, args: string[], name: string): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: string[] = [];
    this.logs.set(name, chunks);
    child.stdout?.on('data', (d: Buffer) => chunks.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => chunks.push(d.toString()));
    this.children.push(child);
    return child;
  }

  tails(lines: number): string[] {
    const out: string[] = [];
    for (const [name, chunks] of this.logs) {
      const all = chunks.join('').trimEnd().split('\n');
      out.push(`--- ${name} (last ${Math.min(lines, all.length)} lines)`, ...all.slice(-lines));
    }
    return out;
  }

  exec(ns: string, args: string[]): { ok: boolean; out: string } {
    try {
      return { ok: true, out: this.run(['ip', 'netns', 'exec', ns, ...args]) };
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      return { ok: false, out: `${err.stdout ?? ''}${err.stderr ?? err.message}` };
    }
  }

  cleanup(): void {
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGTERM');
    for (const ns of this.namespaces.splice(0)) {
      try {
        for (const pid of this.run(['ip', 'netns', 'pids', ns]).split(/\s+/).filter(Boolean))
          process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
      try {
        this.run(['ip', 'netns', 'del', ns]);
      } catch {
        // already gone
      }
      rmSync(join('/etc/netns', ns), { recursive: true, force: true });
    }
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const node = process.execPath;
const lookupScript = (name: string) =>
  `require('node:dns').promises.resolve4(${JSON.stringify(name)}).then(a=>console.log(a.join(' ')),e=>{console.log(e.code);process.exit(1)})`;
const httpScript = (url: string) =>
  `require('node:http').get(${JSON.stringify(url)},{timeout:8000},r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(r.statusCode+' '+b.trim()))}).on('error',e=>{console.log(e.code);process.exit(1)}).on('timeout',function(){this.destroy(new Error('timeout'))})`;

export async function runDemo(say: Say = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  if (process.platform !== 'linux')
    throw new Error('the demo needs Linux (network namespaces and TUN devices)');
  if (process.getuid?.() !== 0)
    throw new Error('the demo needs root (it creates network namespaces): run `sudo npx dnsnat demo`');
  const stage = new Stage();
  const onSignal = () => {
    say('\ninterrupted: cleaning up');
    stage.cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const tag = `d${process.pid.toString(36)}`;
  try {
    const dir = mkdtempSync(join(tmpdir(), 'dnsnat-demo-'));
    stage.dirs.push(dir);
    const c = stage.netns(`${tag}-client`);
    const g = stage.netns(`${tag}-gateway`);
    const s = stage.netns(`${tag}-site`);
    stage.link(c, ['198.18.0.2/24'], g, ['198.18.0.1/24'], `${tag}c`);
    stage.link(g, ['198.18.2.1/24'], s, ['198.18.2.2/24'], `${tag}s`);
    say('1. three network namespaces: client 198.18.0.2 — gateway 198.18.0.1 | 198.18.2.1 — site 198.18.2.2');

    const site = stage.spawnIn(
      s,
      [
        node,
        SITE,
        JSON.stringify({
          host: '198.18.2.2',
          records: {
            'app.corp.example': ['198.18.2.2'],
            'wiki.corp.example': ['198.18.2.2'],
            'empty.corp.example': [],
          },
        }),
      ],
      join(dir, 'site.log'),
    );
    let siteReady = false;
    site.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('"ready"')) siteReady = true;
    });
    await waitFor(() => siteReady, 10_000, 'the site (DNS + HTTP)');
    say('2. site: DNS server for corp.example and an HTTP service on 198.18.2.2');

    const client = generateKeyPair();
    const gateway = generateKeyPair();
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [
        `privateKey: ${gateway.privateKey}`,
        'listen: "0.0.0.0:51820"',
        'tunnel: { ipv4: 100.64.0.1, ipv6: "fd00:2021:1111::1" }',
        'nameservers: [198.18.2.2]',
        'masquerade: true',
        'resources:',
        '  - { id: web, pattern: "*.corp.example", ipStack: ipv4 }',
        'clients:',
        `  - { id: alice, publicKey: ${client.publicKey}, tunnelIps: [100.64.0.2, "fd00:2021:1111::2"], resources: [web] }`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'client.yaml'),
      [
        `privateKey: ${client.privateKey}`,
        'tunnel: { ipv4: 100.64.0.2, ipv6: "fd00:2021:1111::2" }',
        'upstreamDns: [198.18.2.2]',
        `stateFile: ${join(dir, 'client-state.json')}`,
        `statusSocket: ${join(dir, 'client.sock')}`,
        'gateways:',
        `  - { id: gw1, endpoint: "198.18.0.1:51820", publicKey: ${gateway.publicKey} }`,
        'resources:',
        '  - { id: web, pattern: "*.corp.example", gateway: gw1, ipStack: ipv4 }',
        '',
      ].join('\n'),
    );
    // Applications in the client namespace ask the dnsnat stub.
    mkdirSync(join('/etc/netns', c), { recursive: true });
    writeFileSync(join('/etc/netns', c, 'resolv.conf'), 'nameserver 100.100.111.1\n');

    stage.spawnIn(
      g,
      [node, CLI, 'gateway', '-c', join(dir, 'gateway.yaml'), '-s', join(dir, 'gateway.sock')],
      join(dir, 'gateway.log'),
    );
    stage.spawnIn(c, [node, CLI, 'client', '-c', join(dir, 'client.yaml')], 'client');
    const status = (sock: string) =>
      stage.exec(c, [node, CLI, 'status', '--json', '--socket', join(dir, sock)]);
    await waitFor(
      () =>
        status('client.sock').ok &&
        stage.exec(g, [node, CLI, 'status', '--socket', join(dir, 'gateway.sock')]).ok,
      15_000,
      'the client and gateway daemons',
    );
    say(
      '3. gateway and client daemons running (WireGuard tunnel, gateway NAT, client stub on 100.100.111.1)',
    );

    const a = stage.exec(c, [node, '-e', lookupScript('app.corp.example')]);
    say(`4. DNS  app.corp.example -> ${a.out.trim()}   (proxy IPs answered by the client's stub)`);
    const h = stage.exec(c, [node, '-e', httpScript('http://app.corp.example/')]);
    say(`5. HTTP http://app.corp.example/ -> ${h.out.trim()}`);
    const p = stage.exec(c, ['ping', '-c', '2', '-W', '3', 'app.corp.example']);
    const pingLine =
      p.out.split('\n').find((l) => l.includes('packets transmitted')) ?? p.out.trim().split('\n').pop();
    say(`6. ping app.corp.example through the NAT: ${pingLine ?? ''}`);
    const e = stage.exec(c, [node, '-e', lookupScript('empty.corp.example')]);
    say(`7. DNS  empty.corp.example -> ${e.out.trim()}   (the site has no records for it)`);
    const eh = stage.exec(c, [node, '-e', httpScript('http://empty.corp.example/')]);
    say(
      `   HTTP http://empty.corp.example/ -> ${eh.out.trim()}   (the gateway answered inactive; nothing to reach)`,
    );
    say('   (every DNS query of a name sends one AssignedIps; each was answered at once, none was retried)');
    const w = stage.exec(c, [node, '-e', httpScript('http://wiki.corp.example/')]);
    say(`8. other names keep working: http://wiki.corp.example/ -> ${w.out.trim()}`);
    await sleep(500);

    const final = JSON.parse(status('client.sock').out) as {
      domains: Array<{ domain: string; state: string; sends: number; resourceId: string; gatewayId: string }>;
    };
    say("9. the client's state table (dnsnat status):");
    for (const d of final.domains) {
      say(
        `   ${d.domain.padEnd(24)} ${d.state.padEnd(10)} ${`${d.resourceId}@${d.gatewayId}`.padEnd(10)} AssignedIps sent: ${d.sends}`,
      );
    }
    const ok =
      h.ok && w.ok && final.domains.some((d) => d.domain === 'empty.corp.example' && d.state === 'failed');
    if (!ok) for (const line of stage.tails(20)) say(line);
    say(ok ? 'demo complete; cleaning up' : 'demo finished with problems (logs above); cleaning up');
    return ok ? 0 : 1;
  } catch (e) {
    for (const line of stage.tails(20)) say(line);
    throw e;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    stage.cleanup();
  }
}
