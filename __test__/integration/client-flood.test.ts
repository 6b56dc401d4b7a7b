// A flood of unique names must not lock the user out (issue "Unique-name floods lock the user out").
// A real `dnsnat client` daemon in `c` (state file, default limits: 16,384 names) and a real `dnsnat
// gateway` in `g1` (a share of 200 bindings per client, so that the flood reaches it within seconds: the
// client sends at most 50 AssignedIps a second for names nobody connects to) serving `web` (*.corp.example) and `db`
// (*.db.example); dnsmasq at the site answers every name under both, and the site echoes UDP on :7007.
// A python script asks the stub for 100,000 made-up names f<N>.corp.example as fast as it can (at most 500
// unanswered). Proves, during and after the flood:
//   1. an honest app still resolves new names under both resources and exchanges UDP with the site;
//   2. the client's memory stays bounded (RSS growth < 256 MiB; it held every name before: +570 MiB),
//      it holds at most 16,384 names and evicts the least recently used;
//   3. the state file is written at most once a second;
//   4. the gateway evicts bindings instead of refusing names (`too-many-domains` is gone).
// Reported, not asserted: an established flow (app.corp.example, a datagram every 100 ms) through the flood.
// Root, python3 and dnsmasq.
//
//   c (client, tunnel 100.64.0.2) 198.18.0.2 ── 198.18.0.1 g1 (gateway) 198.18.2.1 ── s (198.18.2.2: dnsmasq, echo :7007)
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';
import { fixtures } from '../support/topology.js';

const cli = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');

function toolsAvailable(what: string): boolean {
  const missing = ['python3', 'dnsmasq'].filter((t) => spawnSync(t, ['--version']).error);
  if (missing.length === 0) return true;
  if (process.env.CI === 'true') throw new Error(`${what}: cannot run under CI=true: ${missing} missing`);
  console.warn(`skipping ${what}: ${missing.join(', ')} missing`);
  return false;
}
const run = canRunPrivileged('client flood suite') && toolsAvailable('client flood suite');

const SENTINEL = '100.100.111.1';
const SITE = '198.18.2.2';
const FLOOD_NAMES = 100_000;
const FLOOD_WINDOW = 500;
const FLOOD_LIMIT_S = 120;
const MIB = 1024 * 1024;

type Counters = Record<string, number>;
type DnsResult = { answer: boolean; rcode?: number; a?: string[]; error?: string; attempts: number };
type FloodSummary = Record<'sent' | 'answered' | 'withA' | 'lost' | 'seconds', number> & {
  rcodes: Record<string, number>;
};
type Probe = { name: string; ip?: string; ok: boolean; ms: number; dnsAttempts: number; why?: string };

/** `ip netns exec ns cmd args` without blocking the event loop (probes run during the flood). */
function execIn(ns: string, cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, cmd, ...args],
      { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * MIB },
      (err, out, e) => (err ? reject(new Error(`${cmd} in ${ns}: ${err.message} ${e}`)) : resolve(out)),
    );
  });
}

/** `ip netns exec ns cmd args` as a child speaking JSON lines on stdout. */
const spawnIn = (ns: string, cmd: string, args: string[]) =>
  new JsonLineProcess(spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }));

/** Parses a DNS answer: (id, rcode, A records). Shared by the one-query helper and the flood. */
const PARSE_PY = `
import json, socket, struct, sys, time
def query(qid, name):
    q = struct.pack('!6H', qid, 0x0100, 1, 0, 0, 0)
    return q + b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0' + struct.pack('!2H', 1, 1)
def parse(r):
    qid, flags, qd, an = struct.unpack('!HHHH', r[:8])
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
    return qid, flags & 15, ips
`;

/** One A query for `name` to the stub over UDP, as a libc resolver with `timeout:2 attempts:2` asks. */
const DNS_QUERY_PY = `${PARSE_PY}
t0 = time.monotonic()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for attempt in (1, 2):
    try:
        s.sendto(query(0x2a2a + attempt, sys.argv[2]), (sys.argv[1], 53))
        _, rcode, ips = parse(s.recv(4096))
        out = dict(answer=True, rcode=rcode, a=ips, attempts=attempt)
        break
    except Exception as e:
        out = dict(answer=False, error=type(e).__name__ + ': ' + str(e), attempts=attempt)
out['ms'] = round((time.monotonic() - t0) * 1000)
print(json.dumps(out))
`;

/**
 * Queries f0..f<count-1>.<zone> as fast as the stub answers, at most `window` unanswered (one unanswered for
 * 2 s counts as lost), for at most `limit` seconds. A progress line a second, then the summary.
 */
const FLOOD_PY = `${PARSE_PY}
import select
server, zone, count, window, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.connect((server, 53))
s.setblocking(False)
out, sent, answered, with_a, lost, rcodes = {}, 0, 0, 0, 0, {}
t0 = time.monotonic(); last = t0
while True:
    now = time.monotonic()
    if now - t0 > limit or (sent >= count and not out): break
    while sent < count and len(out) < window:
        qid = sent & 0xFFFF
        if qid in out: lost += 1
        try: s.send(query(qid, 'f%d.%s' % (sent, zone)))
        except BlockingIOError: break
        out[qid] = now; sent += 1
    if select.select([s], [], [], 0.05)[0]:
        while True:
            try: r = s.recv(4096)
            except BlockingIOError: break
            qid, rcode, ips = parse(r)
            if out.pop(qid, None) is None: continue
            answered += 1
            rcodes[rcode] = rcodes.get(rcode, 0) + 1
            if ips: with_a += 1
    if now - last >= 1:
        last = now
        for qid in [q for q, t in out.items() if now - t > 2]:
            del out[qid]; lost += 1
        print(json.dumps(dict(t=round(now - t0, 1), sent=sent, answered=answered)), flush=True)
lost += len(out)
print(json.dumps(dict(done=True, sent=sent, answered=answered, withA=with_a, rcodes=rcodes, lost=lost,
                      seconds=round(time.monotonic() - t0, 2))), flush=True)
`;

/** Sends a UDP datagram to ip:7007 every 200 ms until the echo comes back or `deadlineMs` passes. */
const ECHO_JS =
  "const s=require('node:dgram').createSocket('udp4');const [ip,d]=process.argv.slice(1);const t0=Date.now();let n=0;" +
  'const done=(ok)=>{console.log(JSON.stringify({ok,sent:n,ms:Date.now()-t0}));process.exit(0)};' +
  "s.on('message',()=>done(true));const tick=()=>{if(Date.now()-t0>Number(d))return done(false);" +
  "s.send('echo-'+n++,7007,ip);setTimeout(tick,200)};tick();";

/** An established flow: a datagram to ip:7007 every 100 ms until stdin closes; replies and the longest gap. */
const STREAM_JS =
  "const s=require('node:dgram').createSocket('udp4');const ip=process.argv[1];let sent=0,got=0,last=Date.now(),gap=0;" +
  "s.on('message',()=>{got++;gap=Math.max(gap,Date.now()-last);last=Date.now()});" +
  "const t=setInterval(()=>{s.send('stream-'+sent++,7007,ip)},100);process.stdin.resume();process.stdin.on('end',()=>" +
  '{clearInterval(t);setTimeout(()=>{gap=Math.max(gap,Date.now()-last);console.log(JSON.stringify({sent,got,maxGapMs:gap}));process.exit(0)},500)});';

const inProxyRange = (ip: string) => {
  const [a, b] = ip.split('.').map(Number);
  return a === 100 && (b as number) >= 96 && (b as number) < 128;
};

const rssOf = (pid: number, field = 'VmRSS') =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024;

describe.runIf(run)('a flood of unique names on the client', () => {
  const lab = new Lab('cfld');
  let c = '';
  let g1 = '';
  let dir = '';
  let client: JsonLineProcess | undefined;
  let gateway: JsonLineProcess | undefined;
  let clientPid = 0;
  const kClient = native.generateKeypair();
  const kGw = native.generateKeypair();

  type Status = { counters: Counters; domains?: Array<{ domain: string; state: string }> };
  const statusOf = async (ns: string, sock: string): Promise<Status> =>
    JSON.parse(await execIn(ns, process.execPath, [cli, 'status', '--json', '--socket', join(dir, sock)]));
  const clientCounters = async () => (await statusOf(c, 'client.sock')).counters;
  const gatewayCounters = async () => (await statusOf(g1, 'gateway.sock')).counters;

  /** A new name resolved through the stub, then a UDP echo with the site through its proxy IP. */
  async function probe(name: string, deadlineMs = 10_000): Promise<Probe> {
    const t0 = Date.now();
    const r = JSON.parse(await execIn(c, 'python3', ['-c', DNS_QUERY_PY, SENTINEL, name])) as DnsResult;
    const ip = r.a?.[0];
    const dnsAttempts = r.attempts;
    if (!r.answer || r.rcode !== 0 || !ip || !inProxyRange(ip))
      return { name, ok: false, ms: Date.now() - t0, dnsAttempts, why: `dns ${JSON.stringify(r)}` };
    const echo = JSON.parse(await execIn(c, process.execPath, ['-e', ECHO_JS, ip, String(deadlineMs)]));
    const ms = Date.now() - t0;
    return { name, ip, ok: echo.ok, ms, dnsAttempts, ...(echo.ok ? {} : { why: 'no echo' }) };
  }
  const summarize = (ps: Probe[]) => ({
    ok: ps.filter((p) => p.ok).length,
    of: ps.length,
    slowestOkMs: Math.max(0, ...ps.filter((p) => p.ok).map((p) => p.ms)),
    dnsRetried: ps.filter((p) => p.dnsAttempts > 1).length,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dnsnat-client-flood-'));
    c = lab.netns('c');
    g1 = lab.netns('g1');
    const s = lab.netns('s');
    lab.link(c, ['198.18.0.2/24'], g1, ['198.18.0.1/24']);
    lab.link(g1, ['198.18.2.1/24'], s, [`${SITE}/24`]);
    lab.exec(s, 'ip', ['route', 'add', 'default', 'via', '198.18.2.1']);
    lab.exec(c, 'ip', ['route', 'add', '198.18.2.0/24', 'via', '198.18.0.1']);

    const site = lab.node(s, join(fixtures, 'site-node.cjs'), {});
    await site.waitFor((l) => l.ready === true, 15_000, 'site');
    // site-node.cjs has no DNS; dnsmasq answers every name under both zones with the site's address.
    lab.exec(s, 'dnsmasq', [
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      `--listen-address=${SITE}`,
      `--pid-file=${join(dir, 'dnsmasq.pid')}`,
      `--address=/corp.example/${SITE}`,
      `--address=/db.example/${SITE}`,
    ]);
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [
        `privateKey: ${kGw.privateKey}`,
        'listen: "0.0.0.0:51820"',
        'tunnel: { ipv4: 100.64.0.1 }',
        `nameservers: [${SITE}]`,
        'masquerade: true',
        'limits: { bindingsPerClient: 200 }',
        'resources:',
        '  - { id: web, pattern: "*.corp.example", ipStack: ipv4 }',
        '  - { id: db, pattern: "*.db.example", ipStack: ipv4 }',
        'clients:',
        `  - { id: alice, publicKey: ${kClient.publicKey}, tunnelIps: [100.64.0.2], resources: [web, db] }`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'client.yaml'),
      [
        `privateKey: ${kClient.privateKey}`,
        'tunnel: { ipv4: 100.64.0.2 }',
        `upstreamDns: [${SITE}]`,
        `stateFile: ${join(dir, 'client-state.json')}`,
        `statusSocket: ${join(dir, 'client.sock')}`,
        'gateways:',
        `  - { id: gw1, endpoint: "198.18.0.1:51820", publicKey: ${kGw.publicKey} }`,
        'resources:',
        '  - { id: web, pattern: "*.corp.example", gateway: gw1, ipStack: ipv4 }',
        '  - { id: db, pattern: "*.db.example", gateway: gw1, ipStack: ipv4 }',
        '',
      ].join('\n'),
    );
    gateway = lab.node(g1, join(fixtures, 'daemon.cjs'), {
      args: ['gateway', '-c', join(dir, 'gateway.yaml'), '-s', join(dir, 'gateway.sock')],
    });
    for (let end = Date.now() + 20_000; !(await gatewayCounters().catch(() => undefined)); await sleep(200)) {
      if (Date.now() > end) throw new Error('the gateway daemon did not start');
    }
    client = lab.node(c, join(fixtures, 'daemon.cjs'), { args: ['client', '-c', join(dir, 'client.yaml')] });
    clientPid = (await client.waitFor<{ pid?: number }>((l) => typeof l.pid === 'number', 5000, 'pid'))
      .pid as number;
    await client.waitFor((l) => (l as { msg?: string }).msg === 'client started', 20_000, 'client started');
  }, 60_000);

  afterAll(async () => {
    // A clean stop, so the gateway restores the host (and removes its record under /run/dnsnat).
    for (const p of [client, gateway]) {
      if (p?.child.exitCode === null) p.child.kill('SIGTERM');
    }
    await Promise.race([Promise.all([client?.exited, gateway?.exited]), sleep(5000)]);
    lab.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('100,000 unique names: new names keep working, memory and the state file stay bounded, the gateway evicts', async () => {
    const honest = await probe('app.corp.example');
    expect(honest, 'an honest name before the flood').toMatchObject({ ok: true });
    const rssBefore = rssOf(clientPid);
    // The honest name keeps carrying traffic through the flood (reported: the brief asks only for new names).
    const stream = spawnIn(c, process.execPath, ['-e', STREAM_JS, honest.ip as string]);
    const t0 = Date.now();
    const c0 = await clientCounters();
    const g0 = await gatewayCounters();

    // The flood, with the state file watched (every write is a rename: a new inode) and a pair of new names
    // every second.
    const args = [SENTINEL, 'corp.example', FLOOD_NAMES, FLOOD_WINDOW, FLOOD_LIMIT_S].map(String);
    const flood = spawnIn(c, 'python3', ['-c', FLOOD_PY, ...args]);
    let floodDone = false;
    const summaryP = flood
      .waitFor<FloodSummary & { done?: true }>((l) => l.done === true, (FLOOD_LIMIT_S + 15) * 1000, 'flood')
      .finally(() => {
        floodDone = true;
      });
    const stateFile = join(dir, 'client-state.json');
    const writesSeen: number[] = [];
    let inode = statSync(stateFile).ino;
    const watcher = setInterval(() => {
      const now = statSync(stateFile, { throwIfNoEntry: false })?.ino;
      if (now !== undefined && now !== inode) writesSeen.push(Date.now() - t0);
      inode = now ?? inode;
    }, 50);
    const during: Array<Promise<Probe>> = [];
    await sleep(1000);
    for (let i = 0; !floodDone; i++) {
      during.push(probe(`fresh-d${i}.corp.example`), probe(`fresh-d${i}.db.example`));
      await Promise.race([summaryP, sleep(1000)]);
    }
    const summary = await summaryP;
    const c1 = await clientCounters();
    const floodMs = Date.now() - t0;
    clearInterval(watcher);
    stream.child.stdin.end();
    const established = await stream.waitFor<{ sent: number; got: number; maxGapMs: number }>(
      (l) => typeof l.sent === 'number',
      5000,
      'stream result',
    );
    const duringProbes = await Promise.all(during);

    // After: ten new names under each resource, one pair at a time.
    const afterProbes: Probe[] = [];
    for (let i = 0; i < 10; i++) {
      afterProbes.push(
        ...(await Promise.all([probe(`fresh-a${i}.corp.example`), probe(`fresh-a${i}.db.example`)])),
      );
    }
    const rssAfter = rssOf(clientPid);
    const rssPeak = rssOf(clientPid, 'VmHWM');
    const clientStatus = await statusOf(c, 'client.sock');
    const c2 = clientStatus.counters;
    const g2 = await gatewayCounters();
    const gDelta = (k: string) => (g2[k] ?? 0) - (g0[k] ?? 0);
    const tooMany = {
      gatewayMetric: Object.entries(g2)
        .filter(([k]) => k.includes('too-many-domains'))
        .reduce((n, [, v]) => n + v, 0),
      clientLog: (client?.lines ?? []).filter((l) => JSON.stringify(l).includes('too-many-domains')).length,
      gatewayLog: (gateway?.lines ?? []).filter((l) => JSON.stringify(l).includes('too-many-domains')).length,
    };
    const stateWrites = (c1.stateWrites ?? 0) - (c0.stateWrites ?? 0);
    const report = {
      flood: summary,
      rssMiB: {
        before: +(rssBefore / MIB).toFixed(1),
        after: +(rssAfter / MIB).toFixed(1),
        peak: +(rssPeak / MIB).toFixed(1),
        growth: +((rssAfter - rssBefore) / MIB).toFixed(1),
      },
      stateWrites: {
        duringFlood: stateWrites,
        floodMs,
        seenAtMs: writesSeen,
        minGapSeenMs: Math.min(...writesSeen.slice(1).map((t, i) => t - (writesSeen[i] as number))),
      },
      client: {
        names: c2.client_names,
        namesEvicted: c2.client_names_evicted,
        namesExpired: c2.client_names_expired,
        gateKeys: c2.client_gate_keys,
        heapMiB: Math.round((c2.memoryHeapUsed ?? 0) / MIB),
        heapTotalMiB: Math.round((c2.memoryHeapTotal ?? 0) / MIB),
        externalMiB: Math.round((c2.memoryExternal ?? 0) / MIB),
        trackedDomains: c2.trackedDomains,
        namesReleased: c2.namesReleased,
        dnsQueries: (c2.dns_queries ?? 0) - (c0.dns_queries ?? 0),
        // Events the packet path could not hand to JavaScript (dns-query and proxy-ips-released among them).
        eventQueueDrops: (c2.drop_event_queue_full ?? 0) - (c0.drop_event_queue_full ?? 0),
        // Packets to a proxy IP whose name had been released (an app still using an evicted name).
        unknownProxyIpDrops: (c2.client_drop_unknown_proxy_ip ?? 0) - (c0.client_drop_unknown_proxy_ip ?? 0),
      },
      gateway: {
        assignedIpsAccepted: gDelta('dnsnat_gateway_assigned_ips_total{result="accepted"}'),
        bindingsEvicted: gDelta('dnsnat_gateway_bindings_evicted_total'),
        bindingsExpired: gDelta('dnsnat_gateway_bindings_expired_total'),
        renumberResets: gDelta('dnsnat_gateway_renumber_resets_total'),
        bindings: g2['dnsnat_gateway_bindings{client="alice"}'],
        controlRateLimited: Object.entries(g2)
          .filter(([k]) => k.startsWith('dnsnat_tunnel_drop_control_rate_limited_total'))
          .reduce((n, [, v]) => n + v, 0),
        tooMany,
      },
      probes: { during: summarize(duringProbes), after: summarize(afterProbes), established },
    };
    console.log(`[client-flood] ${JSON.stringify(report)}`);
    // What the client's NAT machine holds for the names that failed (untracked: it never saw their query, or
    // it saw their release).
    const failed = [...duringProbes, ...afterProbes].filter((p) => !p.ok).slice(0, 6);
    if (failed.length > 0)
      console.log(
        `[client-flood] failed probes: ${JSON.stringify(failed.map((p) => ({ ...p, entry: clientStatus.domains?.find((d) => d.domain === p.name) ?? 'untracked' })))}`,
      );

    expect.soft(summary.sent, 'names the flood sent').toBe(FLOOD_NAMES);
    expect.soft(summary.withA, 'flood answers with A records').toBeGreaterThanOrEqual(FLOOD_NAMES * 0.95);
    expect
      .soft(stateWrites, `state writes in ${floodMs} ms of flood`)
      .toBeLessThanOrEqual(floodMs / 1000 + 2);
    expect
      .soft(writesSeen.length, `state file renames seen in ${floodMs} ms of flood`)
      .toBeLessThanOrEqual(floodMs / 1000 + 2);
    const afterOk = (zone: string) => afterProbes.filter((p) => p.ok && p.name.endsWith(zone)).length;
    expect.soft(afterOk('.corp.example'), 'new corp names after the flood').toBe(10);
    expect.soft(afterOk('.db.example'), 'new db names after the flood').toBe(10);
    expect.soft(duringProbes.length, 'probes during the flood').toBeGreaterThan(0);
    expect
      .soft(report.probes.during.ok, 'new names working during the flood')
      .toBeGreaterThanOrEqual(0.8 * duringProbes.length);
    expect.soft(rssAfter - rssBefore, 'client RSS growth (bytes)').toBeLessThan(256 * MIB);
    expect.soft(c2.client_names, 'client_names').toBeLessThanOrEqual(16_384);
    expect.soft(c2.client_names_evicted, 'client_names_evicted').toBeGreaterThan(0);
    expect.soft(c2.trackedDomains, 'trackedDomains').toBeLessThanOrEqual(16_384 + 64);
    // Only what the gateway's control budget (default 100 AssignedIps a second per client) admits becomes a
    // binding: the flood must bring more than 10,000 for one to be evicted.
    expect.soft(report.gateway.bindingsEvicted, 'dnsnat_gateway_bindings_evicted_total').toBeGreaterThan(0);
    expect
      .soft(tooMany, 'too-many-domains anywhere')
      .toEqual({ gatewayMetric: 0, clientLog: 0, gatewayLog: 0 });
  }, 240_000);
});
