// iperf3 through each path, TCP and UDP, client → site ("up") and site → client ("down", iperf3 -R).
// Rounds are interleaved (every path once per round, back to back), so a disturbance from other work on the
// machine hits one round of every path rather than all runs of one.
//
// CPU: the tunnel daemons' user + system time from /proc/<pid>/stat over the run (both ends: the dnsnat
// client and gateway processes, or both wireguard-go processes), per gigabyte received. Also the whole
// machine's busy time per gigabyte, which includes iperf3 itself, the kernel's forwarding and NAT (the only
// cost of the kernel path) and anything else running at the time.

import { cpuSeconds, log, machineBusySeconds, nsRun, sleep } from './lib.js';
import type { Path } from './topology.js';

export type Proto = 'tcp' | 'udp';
export type Direction = 'up' | 'down';

export interface Run {
  path: string;
  proto: Proto;
  direction: Direction;
  round: number;
  gbitPerSecond: number;
  bytes: number;
  lostPercent?: number;
  daemonCpuSeconds: number;
  machineCpuSeconds: number;
}

/** UDP payload that fits a 1420-byte tunnel MTU without fragmenting (1420 - 20 - 8). */
const UDP_LENGTH = 1392;

interface IperfJson {
  error?: string;
  end: {
    sum_received?: { bytes: number; bits_per_second: number };
    sum?: { bytes: number; bits_per_second: number; lost_percent?: number };
  };
}

async function iperf(
  path: Path,
  proto: Proto,
  direction: Direction,
  seconds: number,
): Promise<Omit<Run, 'round'>> {
  const args = ['-c', path.target, '-t', String(seconds), '-J', '--connect-timeout', '5000'];
  if (direction === 'down') args.push('-R');
  // UDP: as fast as the sender can; what counts is what arrives.
  if (proto === 'udp') args.push('-u', '-b', '0', '-l', String(UDP_LENGTH));
  const pids = path.daemonPids();
  const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
  const m0 = machineBusySeconds();
  const out = await nsRun(path.client, 'iperf3', args, (seconds + 20) * 1000);
  const m1 = machineBusySeconds();
  const cpu1 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
  const j = JSON.parse(out) as IperfJson;
  if (j.error) throw new Error(`iperf3 ${path.name}: ${j.error}`);
  // TCP: sum_received is the receiver's count in both directions. UDP: sum carries the receiver's loss, and
  // its rate counts the datagrams that arrived.
  const r = proto === 'tcp' ? j.end.sum_received : j.end.sum;
  if (r === undefined) throw new Error(`iperf3 ${path.name}: no summary`);
  let bytes = r.bytes;
  let lostPercent: number | undefined;
  if (proto === 'udp') {
    const lost = j.end.sum?.lost_percent ?? 0;
    lostPercent = lost;
    bytes = r.bytes * (1 - lost / 100);
  }
  return {
    path: path.name,
    proto,
    direction,
    gbitPerSecond: (bytes * 8) / seconds / 1e9,
    bytes,
    ...(lostPercent === undefined ? {} : { lostPercent }),
    daemonCpuSeconds: cpu1 - cpu0,
    machineCpuSeconds: m1 - m0,
  };
}

export async function measureThroughput(
  paths: Path[],
  opts: { rounds: number; seconds: number; protos: Proto[] },
): Promise<Run[]> {
  const runs: Run[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    for (const proto of opts.protos) {
      for (const direction of ['up', 'down'] as const) {
        for (const path of paths) {
          const r = { ...(await iperf(path, proto, direction, opts.seconds)), round };
          log(
            `round ${round + 1} ${proto} ${direction} ${path.name}: ${r.gbitPerSecond.toFixed(2)} Gbit/s` +
              (r.lostPercent === undefined ? '' : ` (lost ${r.lostPercent.toFixed(1)} %)`) +
              `, daemons ${r.daemonCpuSeconds.toFixed(2)} CPU-s, machine ${r.machineCpuSeconds.toFixed(2)} CPU-s`,
          );
          runs.push(r);
          await sleep(300);
        }
      }
    }
  }
  return runs;
}
