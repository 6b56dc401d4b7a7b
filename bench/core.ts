// The core figures: dnsnat-core's criterion benches (NAT translation per packet on one core, against copying
// the same bytes; the stub's per-query decision), and the client state machine's operations per second.
//
// Criterion writes its samples to a directory of our own (CRITERION_HOME), so runs of other people's benches
// in target/criterion neither disturb nor get mistaken for ours. Each criterion sample is a run of many
// iterations; the figures are the median, min and max over the samples of time per iteration.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { log, type Stat, stat } from './lib.js';
import { domainOf, indexed, MATCH, naive } from './state-machine-population.js';

const root = join(__dirname, '..');

function cargoBench(bench: string, criterionHome: string, extra: string[]): void {
  log(`cargo bench -p dnsnat-core --bench ${bench} ${extra.join(' ')}`);
  execFileSync('cargo', ['bench', '-q', '-p', 'dnsnat-core', '--bench', bench, '--', ...extra], {
    cwd: root,
    env: { ...process.env, CRITERION_HOME: criterionHome },
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 15 * 60_000,
  });
}

/** Time per iteration of each criterion sample, in nanoseconds. */
function samples(criterionHome: string, id: string): Stat {
  const file = join(criterionHome, id, 'new', 'sample.json');
  if (!existsSync(file)) throw new Error(`criterion wrote no ${file}`);
  const s = JSON.parse(readFileSync(file, 'utf8')) as { iters: number[]; times: number[] };
  return stat(
    s.times.map((t, i) => t / (s.iters[i] as number)),
    'ns',
  );
}

const perSecond = (ns: Stat): Stat =>
  stat(
    ns.runs.map((x) => 1e9 / x),
    '/s',
  );

export interface NatFigure {
  size: number;
  proto: 'Tcp' | 'Udp';
  direction: 'out' | 'in';
  sessions: number;
  packetsPerSecond: Stat;
  /** Median translate time / median time of copying the same packets. */
  memcpyRatio: number;
}

export interface CoreResult {
  nat: NatFigure[];
  memcpyPacketsPerSecond: Record<string, Stat>;
  stubQueriesPerSecond: Record<string, Stat>;
}

export function measureCore(criterionHome: string): CoreResult {
  cargoBench('nat', criterionHome, []);
  const nat: NatFigure[] = [];
  const memcpyPacketsPerSecond: Record<string, Stat> = {};
  for (const size of [64, 1400]) {
    for (const sessions of [10, 100_000]) {
      const copy = samples(criterionHome, `nat_${size}B/memcpy/${sessions}`);
      memcpyPacketsPerSecond[`${size}B/${sessions}`] = perSecond(copy);
      for (const proto of ['Tcp', 'Udp'] as const) {
        for (const direction of ['out', 'in'] as const) {
          const ns = samples(criterionHome, `nat_${size}B/${proto}_${direction}/${sessions}`);
          nat.push({
            size,
            proto,
            direction,
            sessions,
            packetsPerSecond: perSecond(ns),
            memcpyRatio: ns.median / copy.median,
          });
        }
      }
    }
  }
  cargoBench('dns_stub', criterionHome, ['--warm-up-time', '1', '--measurement-time', '2', 'dns_stub/']);
  const stubQueriesPerSecond: Record<string, Stat> = {};
  for (const id of ['a_resource_udp', 'aaaa_resource_udp', 'forward_decision']) {
    stubQueriesPerSecond[id] = perSecond(samples(criterionHome, `dns_stub/${id}`));
  }
  return { nat, memcpyPacketsPerSecond, stubQueriesPerSecond };
}

// ---- The client state machine (ts/client/dns-resource-nat.ts), timed in this process ----

/** Operations per second of `op`, in `runs` runs of about `ms` each (after one warm-up run). */
function opsPerSecond(op: () => void, runs: number, ms: number): Stat {
  const result: number[] = [];
  for (let r = 0; r <= runs; r++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(ms) * 1_000_000n;
    let now = start;
    while (now < end) {
      for (let k = 0; k < 64; k++) op();
      n += 64;
      now = process.hrtime.bigint();
    }
    if (r > 0) result.push(n / (Number(now - start) / 1e9));
  }
  return stat(result, 'ops/s');
}

export interface StateMachineResult {
  /** onDnsQuery for a name that is not a resource (every query's resend check). */
  nonResourceQuery: Record<string, Stat>;
  /** onDnsQuery for a confirmed domain, then its DomainStatus answer (a refresh). */
  refresh: Record<string, Stat>;
  /** The same non-resource query on the naive scan, for scale. */
  naiveNonResourceQuery: Record<string, Stat>;
  heapBytesPerDomain: number;
}

export function measureStateMachine(sizes: number[], runs: number, ms: number): StateMachineResult {
  const result: StateMachineResult = {
    nonResourceQuery: {},
    refresh: {},
    naiveNonResourceQuery: {},
    heapBytesPerDomain: Number.NaN,
  };
  for (const n of sizes) {
    const heap0 = process.memoryUsage().heapUsed;
    const nat = indexed(n);
    if (n === Math.max(...sizes)) result.heapBytesPerDomain = (process.memoryUsage().heapUsed - heap0) / n;
    let now = 0;
    result.nonResourceQuery[n] = opsPerSecond(
      () => {
        now++;
        nat.onDnsQuery('www.example.com', [], now);
      },
      runs,
      ms,
    );
    let i = 0;
    result.refresh[n] = opsPerSecond(
      () => {
        now++;
        const domain = domainOf((i++ * 10) % n); // multiples of 10 are confirmed entries
        nat.onDnsQuery(domain, MATCH, now);
        const sent = nat.pollEffect();
        const seq = sent?.type === 'send-assigned-ips' ? sent.seq : undefined;
        nat.onDomainStatus('gw1', { domain, resourceId: 'web', status: 'active', seq }, now);
        while (nat.pollEffect() !== undefined) {}
      },
      runs,
      ms,
    );
    const slow = naive(n);
    result.naiveNonResourceQuery[n] = opsPerSecond(
      () => {
        now++;
        slow.onDnsQuery('www.example.com', [], now);
      },
      runs,
      ms,
    );
    log(
      `state machine ${n}: ${Math.round(result.nonResourceQuery[n]?.median ?? 0)} non-resource q/s, ` +
        `${Math.round(result.refresh[n]?.median ?? 0)} refreshes/s, naive ${Math.round(result.naiveNonResourceQuery[n]?.median ?? 0)} q/s`,
    );
  }
  return result;
}
