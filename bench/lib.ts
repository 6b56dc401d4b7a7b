// Helpers shared by the benchmark harness: statistics over runs, CPU time of processes, bounded commands in
// namespaces, and calls into a tunnel daemon (bench/tunnel-daemon.cjs).
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { JsonLineProcess } from '../__test__/support/netns.js';

/** Several runs of one figure, summarised. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  runs: number[];
  unit: string;
}

export function stat(runs: number[], unit: string): Stat {
  const sorted = [...runs].sort((a, b) => a - b);
  const n = sorted.length;
  const at = (i: number) => sorted[i] as number;
  const median = n === 0 ? Number.NaN : n % 2 ? at((n - 1) / 2) : (at(n / 2 - 1) + at(n / 2)) / 2;
  return {
    median,
    min: sorted[0] ?? Number.NaN,
    max: sorted[n - 1] ?? Number.NaN,
    runs,
    unit,
  };
}

/** Ratios of paired runs (a[i] / b[i]), each pair measured back to back. */
export function ratio(a: Stat, b: Stat): Stat {
  const runs = a.runs.map((x, i) => x / (b.runs[i] as number));
  return stat(runs, '×');
}

/** Runs a command inside a namespace, with a deadline; returns stdout. */
export function nsExec(ns: string, cmd: string, args: string[], timeoutMs = 60_000): string {
  try {
    return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${ns}: ${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.stdout?.trim() || err.message}`,
    );
  }
}

/**
 * nsExec without blocking: for the long runs (iperf3, dnsperf), so that a signal handler (Ctrl-C → clean up the
 * namespaces) runs at once rather than after the command, which a blocked event loop would delay.
 */
export function nsRun(ns: string, cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, cmd, ...args],
      { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new Error(`${ns}: ${cmd} ${args.join(' ')}: ${stderr.trim() || stdout.trim() || err.message}`),
          );
        else resolve(stdout);
      },
    );
  });
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** User + system CPU seconds a process (all its threads) has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Busy CPU seconds of the whole machine (all cores; not idle, not iowait). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] as string;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return (total - (v[3] ?? 0) - (v[4] ?? 0)) / TICKS_PER_SECOND;
}

/** Resident set size of a process in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Pids running in a namespace whose command name is `comm`. */
export function pidsIn(ns: string, comm: string): number[] {
  const out = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  return out
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm;
      } catch {
        return false;
      }
    });
}

type Line = Record<string, unknown>;

/** Calls a Tunnel method in a daemon and returns its result (the tests' helper). */
export { call } from '../__test__/support/topology.js';

export async function counters(
  p: JsonLineProcess,
): Promise<{ counters: Record<string, number>; events: Record<string, number> }> {
  const before = p.lines.length;
  p.send({ counters: true });
  const line = await p.waitFor<Line>((l) => l.counters !== undefined && p.lines.indexOf(l) >= before);
  return line as { counters: Record<string, number>; events: Record<string, number> };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
