// A hostile but configured gateway client: wireguard-go (a standard WireGuard
// peer, configured with wg(8)) in its own namespace, and `fixtures/inject.py`
// writing raw packets into its TUN device, which wireguard-go encrypts to the
// gateway like any client's traffic. Control packets (IPv6 from :: to ::) need
// `::/128` in the peer's allowed-ips: wireguard-go picks the peer of an
// outgoing packet by its destination.
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Lab } from './netns.js';

const injectScript = join(__dirname, '..', 'fixtures', 'inject.py');

let python: string | undefined;

/**
 * Whether python3, wireguard-go and wg are installed. Prints why not and returns false outside CI; throws
 * under CI=true, where a skip is not allowed.
 */
export function attackerToolsAvailable(what: string): boolean {
  const missing: string[] = [];
  const py = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  if (py.error || py.status !== 0 || !py.stdout.trim()) missing.push('python3');
  else python = py.stdout.trim();
  for (const tool of ['wireguard-go', 'wg']) {
    if (spawnSync(tool, ['--version']).error) missing.push(tool);
  }
  if (missing.length === 0) return true;
  if (process.env.CI === 'true') throw new Error(`${what}: ${missing.join(', ')} must be installed under CI`);
  console.warn(`skipping ${what}: ${missing.join(', ')} missing`);
  return false;
}

/** What `inject.py` takes; `ifname` is filled in. */
export type InjectArgs =
  | ({ cmd: 'control'; mode: 'flood'; kind: 'assigned' | 'garbage' | 'mixed' | 'raw' } & FloodArgs)
  | ({ cmd: 'control'; mode: 'names'; count: number; start?: number; repeat?: number } & NameArgs)
  | ({ cmd: 'control'; mode: 'renumber'; names: number; perRound?: number } & NameArgs)
  | ({
      cmd: 'udp-ports';
      dst: string;
      src?: string;
      dport?: number;
      from?: number;
      to?: number;
      repeat?: number;
      payload?: string;
    } & Bounds);

interface Bounds {
  /** Hard time bound of the run (default 10, at most 300). */
  seconds?: number;
  /** Packets per second; 0 or absent: as fast as python sends. */
  rate?: number;
  maxPackets?: number;
}
interface NameArgs extends Bounds {
  resource?: string;
  prefix?: string;
  suffix?: string;
  /** Proxy IP block of name 0; name i uses block base + i. */
  base?: number;
  ipv6?: boolean;
}
interface FloodArgs extends NameArgs {
  domain?: string;
  block?: number;
  ips?: string[];
  type?: number;
  body?: string;
  seed?: number;
}

export interface InjectSummary {
  cmd: string;
  mode?: string;
  sent: number;
  errors: number;
  seconds: number;
  pps: number;
  /** Packets wireguard-go read from its TUN device during the run (approximate: read lazily). */
  tunTx: number | null;
  /** Packets the TUN device dropped because wireguard-go did not read them in time. */
  tunDropped: number | null;
  [key: string]: unknown;
}

/** The four proxy IPv4 addresses of block b, as inject.py derives them (100.96.0.0 + 16 + 4b + k). */
export function proxyBlock(b: number): string[] {
  const base = (100 << 24) + (96 << 16) + 16 + 4 * b;
  return [0, 1, 2, 3].map((k) => {
    const n = base + k;
    return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
  });
}

export interface AttackerOptions {
  /** The attacker's WireGuard private key (base64). */
  privateKey: string;
  gatewayPublicKey: string;
  /** `ip:port` of the gateway as seen from the attacker's namespace. */
  endpoint: string;
  /** The attacker's tunnel address (a configured client's tunnelIps). */
  tunnelIp: string;
  /** Interface name; default unique per run (wireguard-go's UAPI socket path is not per namespace). */
  ifname?: string;
  handshakeTimeoutMs?: number;
}

export interface Attacker {
  readonly ns: string;
  readonly ifname: string;
  readonly pid: number | undefined;
  /** Runs inject.py in the namespace; resolves with its summary line, rejects on a failure or a timeout. */
  inject(args: InjectArgs, timeoutMs?: number): Promise<InjectSummary>;
  /** `wg show <if> transfer` of the gateway peer: bytes received from it and sent to it. */
  transfer(): { rx: number; tx: number };
  /** Seconds since the epoch of the latest handshake with the gateway, 0 if none. */
  latestHandshake(): number;
  /** What wireguard-go printed (verbose log). */
  readonly log: string[];
  stop(): void;
}

/**
 * Starts wireguard-go in `ns` as a client of the gateway, and waits until the handshake completes. The
 * namespace needs a route to the endpoint already.
 */
export async function startAttacker(lab: Lab, ns: string, opts: AttackerOptions): Promise<Attacker> {
  const ifname = (
    opts.ifname ?? `wga${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`
  )
    .slice(0, 15)
    .replace(/[^A-Za-z0-9_-]/g, '');
  const dir = mkdtempSync(join(tmpdir(), 'dnsnat-attacker-'));
  const keyFile = join(dir, 'private.key');
  writeFileSync(keyFile, `${opts.privateKey}\n`, { mode: 0o600 });

  const log: string[] = [];
  // -f: stay in the foreground, so the process is ours to stop. wireguard-go refuses to run on Linux
  // unless told the kernel module is not an option.
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'wireguard-go', '-f', ifname], {
    env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d: Buffer) => {
    log.push(d.toString());
    if (log.length > 200) log.splice(0, log.length - 200);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited: number | null | undefined;
  child.on('exit', (code) => {
    exited = code;
  });

  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    lab.exec(ns, 'ip', ['link', 'del', ifname], { allowFail: true });
    // wireguard-go removes its UAPI socket on a clean exit; not if it is killed first.
    rmSync(`/var/run/wireguard/${ifname}.sock`, { force: true });
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    // The UAPI socket appears once the device exists.
    const up = Date.now() + 10_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`wireguard-go exited (${exited}): ${log.join('')}`);
      if (lab.exec(ns, 'wg', ['show', ifname], { allowFail: true }).includes(ifname)) break;
      if (Date.now() > up) throw new Error(`wireguard-go did not create ${ifname}: ${log.join('')}`);
      await sleep(100);
    }
    lab.exec(ns, 'wg', [
      'set',
      ifname,
      'private-key',
      keyFile,
      'peer',
      opts.gatewayPublicKey,
      'endpoint',
      opts.endpoint,
      'persistent-keepalive',
      '1',
      // The gateway's tunnel address (to trigger the handshake), the proxy ranges, and `::/128`: the
      // destination of control packets.
      'allowed-ips',
      '100.64.0.0/11,100.96.0.0/11,::/128,fd00:2021:1111::/48',
    ]);
    lab.exec(ns, 'ip', ['addr', 'add', `${opts.tunnelIp}/32`, 'dev', ifname]);
    lab.exec(ns, 'ip', ['link', 'set', ifname, 'up']);
    lab.exec(ns, 'ip', ['route', 'add', '100.64.0.0/11', 'dev', ifname]);
    lab.exec(ns, 'ip', ['route', 'add', '100.96.0.0/11', 'dev', ifname]);
  } catch (e) {
    stop();
    throw e;
  }

  const latestHandshake = (): number => {
    const out = lab.exec(ns, 'wg', ['show', ifname, 'latest-handshakes'], { allowFail: true });
    const line = out.split('\n').find((l) => l.startsWith(opts.gatewayPublicKey));
    return Number(line?.split('\t')[1] ?? 0) || 0;
  };
  const transfer = (): { rx: number; tx: number } => {
    const out = lab.exec(ns, 'wg', ['show', ifname, 'transfer'], { allowFail: true });
    const f =
      out
        .split('\n')
        .find((l) => l.startsWith(opts.gatewayPublicKey))
        ?.split('\t') ?? [];
    return { rx: Number(f[1] ?? 0), tx: Number(f[2] ?? 0) };
  };

  const deadline = Date.now() + (opts.handshakeTimeoutMs ?? 15_000);
  while (latestHandshake() === 0) {
    if (Date.now() > deadline) {
      stop();
      throw new Error(`no handshake between ${ifname} and ${opts.endpoint}; wireguard-go: ${log.join('')}`);
    }
    // Any packet routed at the device makes wireguard-go start a handshake.
    lab.exec(ns, 'ping', ['-c', '1', '-W', '1', '100.64.0.1'], { allowFail: true });
  }

  const inject = (args: InjectArgs, timeoutMs?: number): Promise<InjectSummary> => {
    const limit = timeoutMs ?? ((args.seconds ?? 10) + 30) * 1000;
    const argv = JSON.stringify({ ...args, ifname });
    return new Promise((resolve, reject) => {
      execFile(
        'ip',
        ['netns', 'exec', ns, python ?? 'python3', injectScript, argv],
        { encoding: 'utf8', timeout: limit, killSignal: 'SIGKILL', maxBuffer: 1 << 20 },
        (err, stdout, stderr) => {
          const last = stdout.trim().split('\n').pop() ?? '';
          if (err) {
            reject(
              new Error(`inject.py ${args.cmd} failed (${err.message}): ${stderr.trim()} ${stdout.trim()}`),
            );
            return;
          }
          try {
            resolve(JSON.parse(last) as InjectSummary);
          } catch {
            reject(new Error(`inject.py ${args.cmd}: no summary line: ${stdout} ${stderr}`));
          }
        },
      );
    });
  };

  return {
    ns,
    ifname,
    pid: child.pid,
    inject,
    transfer,
    latestHandshake,
    log,
    stop,
  };
}
