// `npm run bench`: dnsnat next to what users would use instead, measured in one run on this machine, written
// to bench/results/<date>.json and bench/results/latest.md. Root (network namespaces, TUN devices). Nothing
// here is a test assertion. See docs/performance.md for what is measured and how.
//
// Knobs (environment): BENCH_ROUNDS (default 5), BENCH_SECONDS per iperf3/dnsperf run (default 5),
// BENCH_ONLY (comma-separated subset of throughput,dns,setup-latency,memory,core,state-machine), BENCH_NO_WRITE=1,
// BENCH_DNSPERF (dnsperf's load arguments), BENCH_RENDER=<results.json> (only rewrite latest.md from it).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../__test__/support/netns.js';
import { netnsCapability } from '../__test__/support/privileges.js';
import { type CoreResult, measureCore, measureStateMachine, type StateMachineResult } from './core.js';
import { type DnsResult, measureDns } from './dns.js';
import { log, ratio, type Stat, stat } from './lib.js';
import { type DaemonMemory, type MemoryResult, measureDaemonMemory, measureMemory } from './memory.js';
import { measureSetupLatency, type SetupLatency } from './setup-latency.js';
import { measureThroughput, type Proto, type Run } from './throughput.js';
import {
  dnsnatPath,
  kernelPath,
  keyDirectory,
  MTU,
  type Path,
  removeWireguardGoSockets,
  wireguardGoPath,
} from './topology.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ALL = ['throughput', 'dns', 'memory', 'core', 'state-machine', 'setup-latency'];
const ONLY = new Set((process.env.BENCH_ONLY ?? ALL.join(',')).split(',').map((s) => s.trim()));
const root = join(__dirname, '..');

function version(cmd: string, args: string[], re: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return re.exec(out)?.[1] ?? out.split('\n')[0]?.trim() ?? '';
  } catch (e) {
    const out = `${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`;
    return re.exec(out)?.[1] ?? 'unknown';
  }
}

function machine() {
  const git = (args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: version('uname', ['-r'], /(.+)/),
    node: process.version,
    dnsnatCommit: git(['rev-parse', '--short', 'HEAD']),
    // Uncommitted changes of anyone working in this tree at the time are part of what was built.
    dnsnatTreeDirty: git(['status', '--porcelain', '--untracked-files=no', '--', 'crates']) !== '',
    wireguardGo: version('wireguard-go', ['--version'], /v?(\d[\w.+~-]*)/),
    iperf3: version('iperf3', ['--version'], /iperf (\S+)/),
    dnsmasq: version('dnsmasq', ['--version'], /version (\S+)/),
    dnsperf: version('dnsperf', ['-h'], /Version (\S+)/),
  };
}

interface ThroughputSummary {
  proto: Proto;
  direction: 'up' | 'down';
  gbitPerSecond: Record<string, Stat>;
  daemonCpuSecondsPerGB: Record<string, Stat>;
  machineCpuSecondsPerGB: Record<string, Stat>;
  udpLostPercent?: Record<string, Stat>;
  vsWireguardGo: Stat;
  vsKernel: Stat;
}

function summariseThroughput(runs: Run[], paths: string[]): ThroughputSummary[] {
  const out: ThroughputSummary[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    for (const direction of ['up', 'down'] as const) {
      const of = (p: string) =>
        runs.filter((r) => r.proto === proto && r.direction === direction && r.path === p);
      if (of('dnsnat').length === 0) continue;
      const per = (f: (r: Run) => number, unit: string) =>
        Object.fromEntries(paths.map((p) => [p, stat(of(p).map(f), unit)]));
      const gbit = per((r) => r.gbitPerSecond, 'Gbit/s');
      const s: ThroughputSummary = {
        proto,
        direction,
        gbitPerSecond: gbit,
        daemonCpuSecondsPerGB: per((r) => r.daemonCpuSeconds / (r.bytes / 1e9), 'CPU-s/GB'),
        machineCpuSecondsPerGB: per((r) => r.machineCpuSeconds / (r.bytes / 1e9), 'CPU-s/GB'),
        vsWireguardGo: ratio(gbit.dnsnat as Stat, gbit['wireguard-go'] as Stat),
        vsKernel: ratio(gbit.dnsnat as Stat, gbit.kernel as Stat),
      };
      if (proto === 'udp') s.udpLostPercent = per((r) => r.lostPercent ?? 0, '%');
      out.push(s);
    }
  }
  return out;
}

interface Results {
  date: string;
  startedAt: string;
  finishedAt?: string;
  machine: ReturnType<typeof machine>;
  settings: { rounds: number; seconds: number; tunnelMtu: number };
  loadAverage: { start: number[]; end?: number[] };
  throughput?: { summary: ThroughputSummary[]; runs: Run[] };
  dns?: DnsResult & {
    qps: Record<string, Stat>;
    vsDnsmasq: Stat;
    /** Server CPU microseconds per answered query, and dnsnat's over dnsmasq's per paired round. */
    cpuMicrosPerQuery?: Record<string, Stat>;
    cpuVsDnsmasq?: Stat;
    /** dnsperf's CPU seconds per second of run: 1 is a whole core. */
    dnsperfLoad?: Record<string, Stat>;
  };
  memory?: MemoryResult & {
    client10kDomains: { rssBefore: number; rssTracked: number; names: number } | undefined;
  };
  daemonMemory?: DaemonMemory;
  core?: CoreResult;
  stateMachine?: StateMachineResult;
  setupLatency?: SetupLatency;
  errors: string[];
}

// ---- Markdown ----

const num = (x: number, digits: number) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a';

/** Digits enough for three significant figures. */
const sig = (x: number) =>
  x === 0 || !Number.isFinite(x) ? 0 : Math.max(0, 2 - Math.floor(Math.log10(Math.abs(x))));

function fmt(s: Stat | undefined, scale = 1, digits?: number): string {
  if (s === undefined) return 'n/a';
  const d = digits ?? sig(s.median * scale);
  return `${num(s.median * scale, d)} (${num(s.min * scale, d)}–${num(s.max * scale, d)})`;
}

const mib = (b: number) => `${num(b / 2 ** 20, 1)} MiB`;

function markdown(r: Results): string {
  const lines: string[] = [];
  const row = (...cells: string[]) => lines.push(`| ${cells.join(' | ')} |`);
  lines.push(
    `Measured ${r.date} on ${r.machine.cores} × ${r.machine.cpu}, Linux ${r.machine.kernel}, ` +
      `by \`npm run bench\` (dnsnat ${r.machine.dnsnatCommit}${r.machine.dnsnatTreeDirty ? '+' : ''}). ` +
      `Each figure: median (min–max) of ${r.settings.rounds} runs` +
      `${r.core ? '; criterion figures over its samples' : ''}. Ratios are of paired runs measured back to back. ` +
      `Load average at start ${r.loadAverage.start.map((x) => x.toFixed(1)).join(' ')}.`,
    '',
  );
  if (r.throughput) {
    lines.push(
      `### Throughput, client → gateway → site (iperf3, ${r.settings.seconds} s per run, tunnel MTU ${r.settings.tunnelMtu})`,
      '',
    );
    row(
      'Traffic',
      'dnsnat',
      'wireguard-go + nft DNAT',
      'kernel (veth + nft DNAT)',
      'dnsnat / wg-go',
      'dnsnat / kernel',
    );
    row('---', '---:', '---:', '---:', '---:', '---:');
    for (const s of r.throughput.summary) {
      const g = s.gbitPerSecond;
      row(
        `${s.proto.toUpperCase()} ${s.direction === 'up' ? 'client → site' : 'site → client'}, Gbit/s`,
        fmt(g.dnsnat),
        fmt(g['wireguard-go']),
        fmt(g.kernel),
        `${fmt(s.vsWireguardGo)}×`,
        `${fmt(s.vsKernel)}×`,
      );
    }
    for (const s of r.throughput.summary) {
      const d = s.daemonCpuSecondsPerGB;
      row(
        `${s.proto.toUpperCase()} ${s.direction}, tunnel daemons' CPU-s/GB`,
        fmt(d.dnsnat),
        fmt(d['wireguard-go']),
        '–',
        '',
        '',
      );
    }
    for (const s of r.throughput.summary) {
      const m = s.machineCpuSecondsPerGB;
      row(
        `${s.proto.toUpperCase()} ${s.direction}, whole machine's CPU-s/GB`,
        fmt(m.dnsnat),
        fmt(m['wireguard-go']),
        fmt(m.kernel),
        '',
        '',
      );
    }
    const udp = r.throughput.summary.filter((s) => s.udpLostPercent);
    if (udp.length) {
      lines.push(
        '',
        'UDP: iperf3 -u -b 0 (as fast as the sender can), rate of datagrams that arrived; loss ' +
          udp
            .map(
              (s) =>
                `${s.direction}: dnsnat ${fmt(s.udpLostPercent?.dnsnat, 1, 1)} %, ` +
                `wireguard-go ${fmt(s.udpLostPercent?.['wireguard-go'], 1, 1)} %, kernel ${fmt(s.udpLostPercent?.kernel, 1, 1)} %`,
            )
            .join('; ') +
          '.',
      );
    }
    lines.push('');
  }
  if (r.dns) {
    lines.push(
      `### Stub DNS (dnsperf ${r.dns.dnsperfArgs.join(' ')} -l ${r.settings.seconds}, A queries)`,
      '',
    );
    const cpu = r.dns.cpuMicrosPerQuery;
    const load = r.dns.dnsperfLoad;
    row('Server', 'queries/s', 'ratio', "server's CPU-µs per query", 'ratio', "dnsperf's CPU (cores)");
    row('---', '---:', '---:', '---:', '---:', '---:');
    row(
      `dnsnat stub on 100.100.111.1 (${r.dns.names.toLocaleString('en-US')} resource names)`,
      fmt(r.dns.qps.dnsnat, 1, 0),
      `${fmt(r.dns.vsDnsmasq)}× dnsmasq`,
      fmt(cpu?.dnsnat),
      r.dns.cpuVsDnsmasq ? `${fmt(r.dns.cpuVsDnsmasq)}× dnsmasq` : 'n/a',
      fmt(load?.dnsnat, 1, 2),
    );
    row(
      'dnsmasq on 127.0.0.1, the same names from address= records',
      fmt(r.dns.qps.dnsmasq, 1, 0),
      '1',
      fmt(cpu?.dnsmasq),
      '1',
      fmt(load?.dnsmasq, 1, 2),
    );
    lines.push(
      '',
      "The server's CPU time includes, for dnsnat, the whole client process (the stub's thread and Node's, which " +
        'gets the queries as events). Where dnsperf needs its whole core, queries per second are its limit as ' +
        "much as the server's; CPU per query is not.",
      '',
    );
  }
  if (r.core || r.stateMachine) {
    lines.push('### Core (one core, no I/O)', '');
    row('Figure', 'value', 'vs baseline');
    row('---', '---:', '---:');
    for (const f of r.core?.nat ?? []) {
      if (f.sessions !== 100_000) continue;
      row(
        `NAT ${f.proto.toUpperCase()} ${f.direction}, ${f.size} B, ${f.sessions.toLocaleString('en-US')} sessions, Mpackets/s`,
        fmt(f.packetsPerSecond, 1e-6),
        `${num(f.memcpyRatio, sig(f.memcpyRatio))}× the time of memcpy`,
      );
    }
    for (const [id, s] of Object.entries(r.core?.stubQueriesPerSecond ?? {})) {
      row(`Stub ${id.replaceAll('_', ' ')}, Mqueries/s`, fmt(s, 1e-6), '');
    }
    const sm = r.stateMachine;
    if (sm) {
      for (const n of Object.keys(sm.nonResourceQuery)) {
        const label = Number(n).toLocaleString('en-US');
        row(
          `State machine, ${label} domains: non-resource query, Mops/s`,
          fmt(sm.nonResourceQuery[n], 1e-6),
          `naive scan ${fmt(sm.naiveNonResourceQuery[n], 1e-6)}`,
        );
        row(
          `State machine, ${label} domains: refresh (query + status), Mops/s`,
          fmt(sm.refresh[n], 1e-6),
          '',
        );
      }
    }
    lines.push('');
  }
  if (r.setupLatency) {
    const l = r.setupLatency;
    lines.push(
      `### Connection setup (DNS query for a never-seen name to the first HTTP byte, ${l.names} names per run)`,
      '',
    );
    row('Path', 'p50, ms', 'p99, ms');
    row('---', '---:', '---:');
    row('dnsnat (real client and gateway daemons)', fmt(l.dnsnat.p50), fmt(l.dnsnat.p99));
    row('wireguard-go + DNAT rule installed beforehand', fmt(l.wireguardGo.p50), fmt(l.wireguardGo.p99));
    row('dnsnat / wireguard-go', `${fmt(l.ratio.p50)}×`, `${fmt(l.ratio.p99)}×`);
    lines.push('');
  }
  if (r.memory || r.daemonMemory) {
    lines.push('### Memory (resident set of the Node process)', '');
    row('Process', 'before', 'after', 'per item');
    row('---', '---:', '---:', '---:');
    const dm = r.daemonMemory;
    if (dm) {
      const n = dm.domains.toLocaleString('en-US');
      const per = (x: { rssBefore: number; rssAfter: number }) =>
        `${num((x.rssAfter - x.rssBefore) / (dm.domains - 1), 0)} B/domain`;
      row(
        `\`dnsnat client\`, ${n} tracked domains, all confirmed (before: 1)`,
        mib(dm.client.rssBefore),
        mib(dm.client.rssAfter),
        per(dm.client),
      );
      row(
        `\`dnsnat gateway\`, the same ${n} domains resolved and mapped (${dm.gatewayBindings.toLocaleString('en-US')} bindings)`,
        mib(dm.gateway.rssBefore),
        mib(dm.gateway.rssAfter),
        per(dm.gateway),
      );
    }
    const m = r.memory;
    if (m) {
      row(
        `Gateway Tunnel, ${(m.sessions - m.sessionsBefore).toLocaleString('en-US')} NAT sessions (2 clients)`,
        mib(m.rssBefore),
        mib(m.rssWithSessions),
        `${num(m.bytesPerSession, 0)} B/session`,
      );
      const c = m.client10kDomains;
      if (c) {
        row(
          `Client Tunnel, ${c.names.toLocaleString('en-US')} resource domains with proxy IPs (the stub's table alone)`,
          mib(c.rssBefore),
          mib(c.rssTracked),
          `${num((c.rssTracked - c.rssBefore) / c.names, 0)} B/domain`,
        );
      }
    }
    lines.push(
      '',
      'Single measurement, not a median. The daemons are the real `dnsnat client` and `dnsnat gateway`; the ' +
        "Tunnel rows are the benchmark's bare tunnel processes (no TypeScript state machine or policy).",
      '',
    );
  }
  if (r.errors.length) lines.push('### Errors', '', ...r.errors.map((e) => `- ${e}`), '');
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  if (process.env.BENCH_RENDER) {
    // Only re-renders latest.md from a results file (after a change to the table's layout).
    const r = JSON.parse(readFileSync(process.env.BENCH_RENDER, 'utf8')) as Results;
    writeFileSync(join(__dirname, 'results', 'latest.md'), markdown(r));
    return;
  }
  const cap = netnsCapability();
  const needLab = ['throughput', 'dns', 'memory'].some((x) => ONLY.has(x));
  if (needLab && !cap.ok) throw new Error(`npm run bench: ${cap.reason}`);
  const now = new Date();
  const results: Results = {
    date: now.toISOString().slice(0, 10),
    startedAt: now.toISOString(),
    machine: machine(),
    settings: { rounds: ROUNDS, seconds: SECONDS, tunnelMtu: MTU },
    loadAverage: { start: loadavg() },
    errors: [],
  };
  const attempt = async (what: string, f: () => Promise<void>) => {
    try {
      await f();
    } catch (e) {
      const msg = `${what}: ${(e as Error).message}`.slice(0, 2000);
      log(`FAILED ${msg}`);
      results.errors.push(msg);
    }
  };

  if (needLab) {
    const lab = new Lab('bnch');
    const keys = keyDirectory();
    const cleanup = () => {
      lab.cleanup();
      removeWireguardGoSockets();
      keys.remove();
    };
    const onSignal = () => {
      cleanup();
      process.exit(130);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      log('setting up the dnsnat path');
      const dnsnat = await dnsnatPath(lab);
      if (ONLY.has('throughput')) {
        await attempt('throughput', async () => {
          log('setting up the wireguard-go and kernel paths');
          const paths: Path[] = [dnsnat, await wireguardGoPath(lab, keys.dir), await kernelPath(lab)];
          const runs = await measureThroughput(paths, {
            rounds: ROUNDS,
            seconds: SECONDS,
            protos: ['tcp', 'udp'],
          });
          results.throughput = {
            summary: summariseThroughput(
              runs,
              paths.map((p) => p.name),
            ),
            runs,
          };
        });
      }
      let clientDomains: { rssBefore: number; rssTracked: number; names: number } | undefined;
      if (ONLY.has('dns')) {
        await attempt('dns', async () => {
          const d = await measureDns(lab, dnsnat.client, dnsnat.clientDaemon.child.pid as number, keys.dir, {
            rounds: ROUNDS,
            seconds: SECONDS,
            names: 10_000,
          });
          const of = (server: string, f: (x: (typeof d.runs)[number]) => number, unit: string) =>
            stat(d.runs.filter((x) => x.server === server).map(f), unit);
          const servers = ['dnsnat', 'dnsmasq'];
          const per = (f: (x: (typeof d.runs)[number]) => number, unit: string) =>
            Object.fromEntries(servers.map((s) => [s, of(s, f, unit)])) as Record<string, Stat>;
          const qps = per((x) => x.qps, 'queries/s');
          const cpu = per((x) => (x.serverCpuSeconds / x.queries) * 1e6, 'CPU-µs/query');
          results.dns = {
            ...d,
            qps,
            vsDnsmasq: ratio(qps.dnsnat as Stat, qps.dnsmasq as Stat),
            cpuMicrosPerQuery: cpu,
            cpuVsDnsmasq: ratio(cpu.dnsnat as Stat, cpu.dnsmasq as Stat),
            dnsperfLoad: per((x) => x.dnsperfCpuSeconds / SECONDS, 'cores'),
          };
          clientDomains = { rssBefore: d.clientRss.before, rssTracked: d.clientRss.tracked, names: d.names };
        });
      }
      if (ONLY.has('memory')) {
        await attempt('memory', async () => {
          const m = await measureMemory(lab, dnsnat);
          results.memory = { ...m, client10kDomains: clientDomains };
        });
      }
    } catch (e) {
      results.errors.push(`set-up: ${(e as Error).message}`.slice(0, 2000));
      log(`FAILED set-up: ${(e as Error).message}`);
    } finally {
      cleanup();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }

  if (ONLY.has('memory')) {
    await attempt('daemon memory', async () => {
      results.daemonMemory = await measureDaemonMemory(10_000);
    });
  }
  if (ONLY.has('setup-latency')) {
    await attempt('setup latency', async () => {
      results.setupLatency = await measureSetupLatency(ROUNDS);
    });
  }
  if (ONLY.has('state-machine')) {
    await attempt('state machine', async () => {
      results.stateMachine = measureStateMachine([100, 100_000], Math.max(ROUNDS, 5), 400);
    });
  }
  if (ONLY.has('core')) {
    await attempt('core', async () => {
      const keys = keyDirectory();
      try {
        results.core = measureCore(keys.dir);
      } finally {
        keys.remove();
      }
    });
  }

  results.finishedAt = new Date().toISOString();
  results.loadAverage.end = loadavg();
  const md = markdown(results);
  process.stdout.write(md);
  if (process.env.BENCH_NO_WRITE !== '1') {
    const dir = join(__dirname, 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${results.date}.json`), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(dir, 'latest.md'), md);
    log(`wrote bench/results/${results.date}.json and bench/results/latest.md`);
  }
}

main().catch((e) => {
  log(`FAILED: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
