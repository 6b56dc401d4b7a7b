// What `masquerade: true` changes on the host, and how it is put back even after a crash.
//
// The gateway turns on IPv4/IPv6 forwarding and installs one nftables table of its own:
// - postrouting: tunnel sources are masqueraded to the site;
// - forward: from the tunnel device anywhere but back into it (no client to client through the gateway);
//   towards it only answers (no connection into the tunnel from the site); when forwarding was off before we
//   started, nothing else is forwarded either, so turning it on for the tunnel does not turn the host into a
//   router for every interface;
// - input: from the tunnel device, only answers and pings reach the gateway itself (a translated packet
//   whose real address is one of the gateway's own would otherwise be delivered locally).
//
// What must stay true: the host's original forwarding values are written to a record file *before* anything
// is changed, and the record is removed only after everything was restored. A SIGKILL in between leaves the
// record and the table, and the next start in that namespace restores from the record instead of reading
// back our own "1". A record whose table is gone is stale (its namespace died, its inode was reused).

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TUNNEL_V4, TUNNEL_V6 } from '../net/ip.js';

const FORWARDING = ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'] as const;

/** Where the records live unless a test says otherwise: tmpfs, gone after a reboot like the settings. */
export const DEFAULT_RECORD_DIR = '/run/dnsnat';

interface Record {
  table: string;
  /** proc path → the value before any dnsnat gateway touched it. */
  forwarding: { [path: string]: string };
}

export interface HostForwardingOptions {
  device: string;
  /** The gateway's own tunnel addresses (pings to them are allowed in). */
  tunnelIpv4: string;
  tunnelIpv6?: string;
  recordDir?: string;
  /** Told when a previous run's leftovers are repaired. */
  onRepair?: (what: string) => void;
}

function nft(script: string): void {
  execFileSync('nft', [script], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function tableExists(table: string): boolean {
  try {
    execFileSync('nft', ['list', 'table', 'inet', table], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function deleteTable(table: string): void {
  try {
    execFileSync('nft', ['delete', 'table', 'inet', table], { stdio: 'ignore' });
  } catch {
    // not there: the usual case
  }
}

/** The inode of this process's network namespace (`net:[4026531840]` → `4026531840`). */
function networkNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/net').replace(/\D/g, '');
  } catch {
    return 'host';
  }
}

export class HostForwarding {
  private readonly table: string;
  private readonly recordPath: string;
  private installed = false;
  private record: Record | undefined;

  constructor(private readonly opts: HostForwardingOptions) {
    this.table = `dnsnat_${opts.device.replace(/[^A-Za-z0-9_]/g, '_')}`;
    // Per device and network namespace: forwarding and nftables are per namespace, and so is what to repair.
    this.recordPath = join(
      opts.recordDir ?? DEFAULT_RECORD_DIR,
      `gateway-${opts.device}-${networkNamespace()}.host.json`,
    );
  }

  /** A record a crashed run left, if it is readable. */
  private leftover(): Record | undefined {
    let text: string;
    try {
      text = readFileSync(this.recordPath, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const r = JSON.parse(text) as Record;
      // Namespace inodes are reused once a namespace is gone: a record is ours to repair only if the table it
      // names is still here (a crash leaves it); otherwise it is a dead namespace's and is overwritten.
      if (typeof r.table === 'string' && r.forwarding && typeof r.forwarding === 'object') {
        return tableExists(r.table) ? r : undefined;
      }
    } catch {
      // fall through
    }
    this.opts.onRepair?.(`${this.recordPath}: unreadable record of a previous run ignored`);
    return undefined;
  }

  apply(): void {
    const left = this.leftover();
    if (left) {
      deleteTable(left.table);
      this.opts.onRepair?.(
        `a previous gateway on ${this.opts.device} did not stop cleanly; its nftables table was removed and ` +
          `forwarding will be restored to ${JSON.stringify(left.forwarding)} on stop`,
      );
    }
    const forwarding: { [path: string]: string } = {};
    for (const path of FORWARDING) {
      try {
        forwarding[path] = left?.forwarding[path] ?? readFileSync(path, 'utf8').trim();
      } catch (e) {
        throw new Error(`cannot read ${path}: ${(e as Error).message}; run as root or set masquerade: false`);
      }
    }
    this.record = { table: this.table, forwarding };
    this.writeRecord(this.record);
    for (const path of FORWARDING) {
      try {
        writeFileSync(path, '1');
      } catch (e) {
        this.undo();
        throw new Error(
          `cannot enable forwarding (${path}): ${(e as Error).message}; run as root or set masquerade: false`,
        );
      }
    }
    deleteTable(this.table);
    try {
      nft(this.rules(forwarding[FORWARDING[0]] === '1'));
      this.installed = true;
    } catch (e) {
      this.undo();
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(
        `cannot install the nftables rules: ${(err.stderr?.toString().trim() || err.message).split('\n')[0]}; set masquerade: false to manage them yourself`,
      );
    }
  }

  private rules(wasRouter: boolean): string {
    const t = this.table;
    const dev = JSON.stringify(this.opts.device);
    const pings = [
      `add rule inet ${t} input_from_tunnel iifname ${dev} ip daddr ${this.opts.tunnelIpv4} icmp type echo-request accept`,
      ...(this.opts.tunnelIpv6 === undefined
        ? []
        : [
            `add rule inet ${t} input_from_tunnel iifname ${dev} ip6 daddr ${this.opts.tunnelIpv6} icmpv6 type echo-request accept`,
          ]),
    ];
    return [
      `add table inet ${t}`,
      `add chain inet ${t} post { type nat hook postrouting priority srcnat; }`,
      `add rule inet ${t} post ip saddr ${TUNNEL_V4.text} masquerade`,
      `add rule inet ${t} post ip6 saddr ${TUNNEL_V6.text} masquerade`,
      `add chain inet ${t} forward_from_tunnel { type filter hook forward priority filter; policy accept; }`,
      `add rule inet ${t} forward_from_tunnel iifname ${dev} oifname ${dev} drop`,
      `add rule inet ${t} forward_from_tunnel iifname ${dev} accept`,
      // Towards the tunnel only answers (the NAT would drop anything else anyway: defence in depth).
      `add rule inet ${t} forward_from_tunnel oifname ${dev} ct state established,related accept`,
      `add rule inet ${t} forward_from_tunnel oifname ${dev} drop`,
      // Forwarding was on for the tunnel's sake only: everything else stays unforwarded, as it was.
      ...(wasRouter ? [] : [`add rule inet ${t} forward_from_tunnel drop`]),
      `add chain inet ${t} input_from_tunnel { type filter hook input priority filter; policy accept; }`,
      `add rule inet ${t} input_from_tunnel iifname ${dev} ct state established,related accept`,
      ...pings,
      `add rule inet ${t} input_from_tunnel iifname ${dev} drop`,
    ].join('; ');
  }

  private writeRecord(r: Record): void {
    mkdirSync(join(this.recordPath, '..'), { recursive: true, mode: 0o700 });
    const tmp = `${this.recordPath}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(r)}\n`, { mode: 0o600, flag: 'w' });
    renameSync(tmp, this.recordPath);
  }

  /** Puts everything back; safe to call twice and after a failed `apply`. */
  undo(): void {
    if (this.installed) deleteTable(this.table);
    this.installed = false;
    const r = this.record;
    if (!r) return;
    let restored = true;
    for (const [path, value] of Object.entries(r.forwarding)) {
      try {
        writeFileSync(path, value);
      } catch {
        restored = false; // keep the record: the next start tries again
      }
    }
    if (restored) rmSync(this.recordPath, { force: true });
    this.record = undefined;
  }
}
