// Stub DNS against dnsmasq, with dnsperf, in the dnsnat client's namespace.
//
// - dnsnat: the client Tunnel's stub on the sentinel 100.100.111.1 (UDP sockets bound to the sentinel, an
//   address of the TUN device, so the kernel delivers queries locally, as it does for dnsmasq). Names host-<i>.bench.example match the resource *.bench.example (IPv4 only) and are
//   answered with four proxy IPs each; every query is also reported to JavaScript as the client does it (a dns-query
//   event for a name's first query in a second, a count in queries-seen for its repeats).
// - dnsmasq: on the same namespace's loopback, answering the same names from local records (address=/name/ip,
//   four addresses per name, like the stub), no upstream, no logging.
//
// Both get a warm-up pass over every name first (the stub allocates proxy IPs on a name's first query), then
// rounds of dnsperf -l <seconds>, interleaved.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../__test__/support/netns.js';
import { cpuSeconds, log, nsRun, pidsIn, rssBytes, sleep } from './lib.js';
import { RESOURCE_ZONE } from './topology.js';

export interface DnsperfRun {
  server: 'dnsnat' | 'dnsmasq';
  round: number;
  qps: number;
  completedPercent: number;
  noerrorPercent: number;
  avgLatencyMs: number;
  /** Queries answered in the run. */
  queries: number;
  /** User + system CPU seconds of the server's process during the run (for dnsnat: the whole client process). */
  serverCpuSeconds: number;
  /** User + system CPU seconds of dnsperf itself; near the run's length means dnsperf was the limit. */
  dnsperfCpuSeconds: number;
}

export interface DnsResult {
  runs: DnsperfRun[];
  names: number;
  dnsperfArgs: string[];
  /** RSS of the dnsnat client process before the first query and with every name tracked. */
  clientRss: { before: number; tracked: number };
}

const name = (i: number) => `host-${i}.${RESOURCE_ZONE}`;

// One dnsperf thread, several sockets and enough queries in flight to keep a server busy; no rate limit, so
// dnsperf sends as fast as answers come back, and the other core is the server's. Where dnsperf itself needs
// its whole core (its CPU seconds are recorded per run), queries per second measure dnsperf as much as the
// server; the server's CPU time per query is the figure that does not depend on that.
const DNSPERF = (process.env.BENCH_DNSPERF ?? '-T 1 -c 4 -q 100').split(' ');

function parseDnsperf(
  out: string,
): Omit<DnsperfRun, 'server' | 'round' | 'serverCpuSeconds' | 'dnsperfCpuSeconds'> {
  const num = (re: RegExp) => {
    const m = re.exec(out);
    if (!m) throw new Error(`dnsperf output without ${re}: ${out}`);
    return Number(m[1]);
  };
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    completedPercent: num(/Queries completed:\s+\d+ \(([\d.]+)%\)/),
    noerrorPercent: /NOERROR \d+ \(([\d.]+)%\)/.test(out) ? num(/NOERROR \d+ \(([\d.]+)%\)/) : 0,
    avgLatencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    queries: num(/Queries completed:\s+(\d+)/),
  };
}

// dnsperf run by bash, whose `times` then prints the CPU time of its children (dnsperf): the second line,
// "<user>m<s>s <system>m<s>s".
const TIMED = 'dnsperf "$@"; times';

function childCpuSeconds(out: string): number {
  const lines = out.trim().split('\n');
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s/.exec(lines[lines.length - 1] ?? '');
  if (!m) throw new Error(`no CPU times after dnsperf's output: ${out.slice(-200)}`);
  return Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]);
}

export async function measureDns(
  lab: Lab,
  ns: string,
  clientPid: number,
  dir: string,
  opts: { rounds: number; seconds: number; names: number },
): Promise<DnsResult> {
  const queries = join(dir, 'queries.txt');
  writeFileSync(queries, Array.from({ length: opts.names }, (_, i) => `${name(i)} A\n`).join(''));
  const conf = join(dir, 'dnsmasq.conf');
  const octets = (i: number) => `${(i >> 8) & 0xff}.${i & 0xff}`;
  writeFileSync(
    conf,
    Array.from({ length: opts.names }, (_, i) =>
      [0, 1, 2, 3]
        .map((k) => `address=/${name(i)}/198.${18 + (k >> 1)}.${octets(i * 2 + (k & 1))}\n`)
        .join(''),
    ).join(''),
  );
  lab.exec(ns, 'dnsmasq', [
    '--no-resolv',
    '--no-hosts',
    '--bind-interfaces',
    '--listen-address=127.0.0.1',
    `--conf-file=${conf}`,
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
  ]);
  await sleep(300);
  const dnsmasqPid = pidsIn(ns, 'dnsmasq')[0];
  if (dnsmasqPid === undefined) throw new Error('dnsmasq did not start');
  const pids = { dnsnat: clientPid, dnsmasq: dnsmasqPid } as const;

  const servers = { dnsnat: '100.100.111.1', dnsmasq: '127.0.0.1' } as const;
  const rssBefore = rssBytes(clientPid);
  for (const [server, addr] of Object.entries(servers)) {
    const out = await nsRun(ns, 'dnsperf', ['-s', addr, '-d', queries, '-n', '1', ...DNSPERF], 120_000);
    const r = parseDnsperf(out);
    log(`dns warm-up ${server}: ${r.completedPercent} % completed, ${r.noerrorPercent} % NOERROR`);
  }
  await sleep(500);
  const rssTracked = rssBytes(clientPid);

  const runs: DnsperfRun[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    for (const [server, addr] of Object.entries(servers) as Array<['dnsnat' | 'dnsmasq', string]>) {
      const cpu0 = cpuSeconds(pids[server]);
      const out = await nsRun(
        ns,
        'bash',
        ['-c', TIMED, 'dnsperf', '-s', addr, '-d', queries, '-l', String(opts.seconds), ...DNSPERF],
        (opts.seconds + 30) * 1000,
      );
      const r: DnsperfRun = {
        server,
        round,
        ...parseDnsperf(out),
        serverCpuSeconds: cpuSeconds(pids[server]) - cpu0,
        dnsperfCpuSeconds: childCpuSeconds(out),
      };
      log(
        `dns round ${round + 1} ${server}: ${Math.round(r.qps)} q/s, ${r.completedPercent} % completed, ` +
          `${r.avgLatencyMs.toFixed(3)} ms average, server ${((r.serverCpuSeconds / r.queries) * 1e6).toFixed(2)} ` +
          `CPU-µs/query, dnsperf ${r.dnsperfCpuSeconds.toFixed(2)} CPU-s`,
      );
      runs.push(r);
      await sleep(300);
    }
  }
  return {
    runs,
    names: opts.names,
    dnsperfArgs: DNSPERF,
    clientRss: { before: rssBefore, tracked: rssTracked },
  };
}
