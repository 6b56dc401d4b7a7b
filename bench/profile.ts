// Where dnsnat's data path spends its time: perf samples (software cpu-clock, which works where hardware
// counters are not exposed, as in most VMs) of the client and gateway tunnel processes during an iperf3 TCP run
// through the dnsnat path of bench/topology.ts. Not part of `npm run bench`; run by hand, as root:
//
//   CARGO_TARGET_DIR=/tmp/dnsnat-prof CARGO_PROFILE_RELEASE_STRIP=none \
//     CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p dnsnat-node
//   cp /tmp/dnsnat-prof/release/libdnsnat_node.so /tmp/dnsnat-prof.node
//   npx tsx bench/profile.ts /tmp/dnsnat-prof.node [up|down|udp-up|udp-down|dns] [seconds]
//
// `dns` profiles the client while dnsperf queries its stub (resource names) instead of running iperf3.
// (The release profile strips symbols; the copy built above keeps them.) Prints perf's report by thread and
// by symbol for each process, and leaves the recordings in /tmp/dnsnat-profile-<role>.data.
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Lab } from '../__test__/support/netns.js';
import { log, nsExec, sleep } from './lib.js';

const [addon, direction = 'up', seconds = '8'] = process.argv.slice(2);
if (addon) process.env.NAPI_RS_NATIVE_LIBRARY_PATH = addon;

async function main(): Promise<void> {
  // Imported after the environment is set: the addon is loaded once, by the first import.
  const { dnsnatPath } = await import('./topology.js');
  const lab = new Lab('prof');
  try {
    const path = await dnsnatPath(lab);
    const roles = { client: path.clientDaemon.child.pid, gateway: path.gatewayDaemon.child.pid };
    const recorders = Object.entries(roles).map(([role, pid]) =>
      spawn(
        'perf',
        [
          'record',
          '-e',
          'cpu-clock',
          '-F',
          '999',
          '-g',
          '-p',
          String(pid),
          '-o',
          `/tmp/dnsnat-profile-${role}.data`,
          '--',
          'sleep',
          String(Number(seconds) - 1),
        ],
        { stdio: 'ignore' },
      ),
    );
    await sleep(200);
    const show = (out: string, re: RegExp) =>
      log(
        out
          .split('\n')
          .filter((l) => re.test(l))
          .join('\n'),
      );
    if (direction === 'dns') {
      const queries = '/tmp/dnsnat-profile-queries.txt';
      writeFileSync(queries, Array.from({ length: 1000 }, (_, i) => `host-${i}.bench.example A\n`).join(''));
      const perf = ['-s', '100.100.111.1', '-d', queries, '-T', '1', '-c', '4', '-q', '100'];
      nsExec(path.client, 'dnsperf', [...perf, '-n', '1'], 60_000);
      show(
        nsExec(path.client, 'dnsperf', [...perf, '-l', seconds], (Number(seconds) + 20) * 1000),
        /per second/,
      );
    } else {
      // up | down: TCP; udp-up | udp-down: UDP as fast as iperf3 can send, as in the benchmark.
      const udp = direction.startsWith('udp') ? ['-u', '-b', '0', '-l', '1392'] : [];
      const args = ['-c', path.target, '-t', seconds, ...udp, ...(direction.endsWith('down') ? ['-R'] : [])];
      show(nsExec(path.client, 'iperf3', args, (Number(seconds) + 20) * 1000), /receiver|sender/);
    }
    await Promise.all(recorders.map((r) => new Promise((resolve) => r.on('exit', resolve))));
    for (const role of Object.keys(roles)) {
      const report = (sort: string, extra: string[] = []) =>
        execFileSync(
          'perf',
          [
            'report',
            '-i',
            `/tmp/dnsnat-profile-${role}.data`,
            '--stdio',
            '--no-children',
            '--sort',
            sort,
            '-g',
            'none',
            '--percent-limit',
            '0.7',
            ...extra,
          ],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 1024 * 1024 },
        )
          .split('\n')
          .filter((l) => l && !l.startsWith('#'))
          .join('\n');
      process.stdout.write(`\n===== ${role}: by thread =====\n${report('comm')}\n`);
      process.stdout.write(`\n===== ${role}: by symbol =====\n${report('dso,sym')}\n`);
    }
  } finally {
    lab.cleanup();
  }
}

main().catch((e) => {
  log(`FAILED: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
