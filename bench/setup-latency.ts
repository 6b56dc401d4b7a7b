// Connection setup: the time from an application's DNS query for a name it has never used to the first byte
// of an HTTP answer, over 200 names, p50 and p99.
//
// - dnsnat: the real `dnsnat gateway` and `dnsnat client` daemons (TypeScript state machine and policy, as a
//   user runs them). The query is answered by the stub at once; the application's SYN waits in the name's
//   buffer while AssignedIps travels to the gateway, the gateway resolves the name (dnsmasq at the site),
//   installs the mapping and answers DomainStatus, and the client flushes the buffer.
// - wireguard-go: the same question against what a user would build by hand: the site's dnsmasq answers
//   every name with one address that the gateway DNATs to the site (a rule installed beforehand).
//
// Run alone with `npx tsx bench/setup-latency.ts` (root), or from bench/run.ts.
import type { Lab } from '../__test__/support/netns.js';
import { inLab, site, startDnsnatDaemons } from './daemons.js';
import { log, nsRun, type Stat, sleep, stat } from './lib.js';
import { wireguardGoPath } from './topology.js';

const NAMES = 200;
const RUNS = 3;

export interface SetupLatency {
  /** p50 and p99 of each run (200 names each), as median (min–max) over the runs. */
  dnsnat: { p50: Stat; p99: Stat };
  wireguardGo: { p50: Stat; p99: Stat };
  /** dnsnat / wireguard-go of each run's p50 and p99. */
  ratio: { p50: Stat; p99: Stat };
  names: number;
}

/** A Node script that, for each name, resolves it through `server` and times the first byte of GET /. */
function clientScript(server: string, prefix: string): string {
  return `
const {Resolver}=require('node:dns').promises;const http=require('node:http');
const r=new Resolver({timeout:3000,tries:2});r.setServers(['${server}']);
const get=(ip)=>new Promise((ok,fail)=>{const q=http.get({host:ip,port:8080,path:'/',agent:false,timeout:10000},(res)=>{res.once('data',()=>{ok();res.destroy()});});q.on('error',fail);q.on('timeout',()=>q.destroy(new Error('timeout')));});
(async()=>{const out=[];for(let i=0;i<${NAMES};i++){const name='${prefix}'+i+'.bench.example';const t0=process.hrtime.bigint();
const [ip]=await r.resolve4(name);await get(ip);out.push(Number(process.hrtime.bigint()-t0)/1e6);}
console.log(JSON.stringify(out));})().catch(e=>{console.error(e.message);process.exit(1)});`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function percentiles(ms: number[]): Percentiles {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

async function dnsnat(lab: Lab, dir: string): Promise<number[]> {
  const d = await startDnsnatDaemons(lab, dir);
  return JSON.parse(
    await nsRun(d.client, process.execPath, ['-e', clientScript('100.100.111.1', 'n')], 120_000),
  );
}

async function wireguardGo(lab: Lab, keyDir: string): Promise<number[]> {
  const path = await wireguardGoPath(lab, keyDir);
  lab.exec(path.site, 'ip', ['route', 'add', 'default', 'via', '198.18.2.1']);
  lab.exec(path.client, 'ip', ['route', 'add', '198.18.2.0/24', 'via', '198.18.0.1']);
  site(lab, path.site, path.target);
  await sleep(500);
  return JSON.parse(
    await nsRun(path.client, process.execPath, ['-e', clientScript('198.18.2.2', 'n')], 120_000),
  );
}

type Percentiles = { p50: number; p99: number };

function oneRun(): Promise<{ d: Percentiles; w: Percentiles }> {
  return inLab('lat', async (lab, dir, keyDir) => {
    const d = percentiles(await dnsnat(lab, dir));
    const w = percentiles(await wireguardGo(lab, keyDir));
    return { d, w };
  });
}

export async function measureSetupLatency(rounds = RUNS): Promise<SetupLatency> {
  const runs: Array<{ d: Percentiles; w: Percentiles }> = [];
  for (let i = 0; i < rounds; i++) {
    log(`connection setup, run ${i + 1}/${rounds}: dnsnat then wireguard-go + DNAT, ${NAMES} new names each`);
    runs.push(await oneRun());
  }
  const of = (f: (r: (typeof runs)[number]) => number, unit: string) => stat(runs.map(f), unit);
  return {
    dnsnat: { p50: of((r) => r.d.p50, 'ms'), p99: of((r) => r.d.p99, 'ms') },
    wireguardGo: { p50: of((r) => r.w.p50, 'ms'), p99: of((r) => r.w.p99, 'ms') },
    ratio: { p50: of((r) => r.d.p50 / r.w.p50, '×'), p99: of((r) => r.d.p99 / r.w.p99, '×') },
    names: NAMES,
  };
}

if (require.main === module) {
  measureSetupLatency()
    .then((r) => {
      const f = (x: Stat) => `${x.median.toFixed(2)} (${x.min.toFixed(2)}–${x.max.toFixed(2)}) ${x.unit}`;
      process.stdout.write(
        `connection setup, DNS query to first HTTP byte, ${r.names} new names per run, median (min–max) of ${RUNS} runs:\n` +
          `  dnsnat        p50 ${f(r.dnsnat.p50)}  p99 ${f(r.dnsnat.p99)}\n` +
          `  wireguard-go  p50 ${f(r.wireguardGo.p50)}  p99 ${f(r.wireguardGo.p99)}  (DNAT rule installed beforehand)\n` +
          `  dnsnat / wireguard-go  p50 ${f(r.ratio.p50)}  p99 ${f(r.ratio.p99)}\n`,
      );
    })
    .catch((e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? e}\n`);
      process.exit(1);
    });
}
