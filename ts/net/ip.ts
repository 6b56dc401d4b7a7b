// IP addresses as both roles need them: parsed once into a number, so that
// range checks and the "sorted real address k mod n" rule of docs/architecture.md#the-gateways-policy compare
// numbers, not strings ("10.0.0.10" sorts before "10.0.0.9" as text), and
// written back in one canonical form (RFC 5952 for IPv6), so that the same
// proxy IP spelled two ways by a client is one key in every map.
import { isIPv4, isIPv6 } from 'node:net';
import { ADDRESS_PLAN } from '../protocol/address-plan.js';

export type Family = 4 | 6;

export interface Ip {
  readonly family: Family;
  readonly value: bigint;
  /** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed). */
  readonly text: string;
}

export interface Cidr {
  readonly family: Family;
  readonly network: bigint;
  readonly prefix: number;
  readonly text: string;
}

function v4Value(text: string): bigint {
  let v = 0n;
  for (const part of text.split('.')) v = (v << 8n) | BigInt(Number(part));
  return v;
}

function v6Value(text: string): bigint {
  let s = text;
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) becomes two hex groups.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = v4Value(tail);
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = s.split('::', 2) as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups =
    rest === undefined ? headGroups : [...headGroups, ...Array(missing).fill('0'), ...tailGroups];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(Number.parseInt(g, 16));
  return v;
}

function formatV4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 0xffn).toString()).join('.');
}

function formatV6(value: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // Longest run of at least two zero groups, the first one on a tie (RFC 5952 §4.2).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses an IPv4 or IPv6 address (no zone, no prefix); undefined when it is not one. */
export function parseIp(text: string): Ip | undefined {
  if (typeof text !== 'string') return undefined;
  if (isIPv4(text)) {
    const value = v4Value(text);
    return { family: 4, value, text: formatV4(value) };
  }
  if (isIPv6(text) && !text.includes('%')) {
    const value = v6Value(text);
    return { family: 6, value, text: formatV6(value) };
  }
  return undefined;
}

/** The canonical text of an address, or undefined. */
export function canonicalIp(text: string): string | undefined {
  return parseIp(text)?.text;
}

/** Parses `addr/prefix`; the address must be the network's first (no host bits). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const bits = ip.family === 4 ? 32 : 128;
  if (prefix > bits) return undefined;
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((ip.value & hostMask) !== 0n) return undefined;
  return { family: ip.family, network: ip.value, prefix, text: `${ip.text}/${prefix}` };
}

export function cidrContains(cidr: Cidr, ip: Ip): boolean {
  if (cidr.family !== ip.family) return false;
  const bits = ip.family === 4 ? 32 : 128;
  return ip.value >> BigInt(bits - cidr.prefix) === cidr.network >> BigInt(bits - cidr.prefix);
}

function mustCidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`bad built-in prefix ${text}`);
  return c;
}

/** docs/architecture.md#address-plan: where proxy IPs come from. A gateway refuses any other address as a proxy IP. */
export const PROXY_V4 = mustCidr(ADDRESS_PLAN.proxyV4);
export const PROXY_V6 = mustCidr(ADDRESS_PLAN.proxyV6);
/** docs/architecture.md#address-plan: the peers' own addresses inside the tunnel. */
export const TUNNEL_V4 = mustCidr(ADDRESS_PLAN.tunnelV4);
export const TUNNEL_V6 = mustCidr(ADDRESS_PLAN.tunnelV6);

export function isProxyIp(ip: Ip): boolean {
  return cidrContains(ip.family === 4 ? PROXY_V4 : PROXY_V6, ip);
}

export function isTunnelIp(ip: Ip): boolean {
  return cidrContains(ip.family === 4 ? TUNNEL_V4 : TUNNEL_V6, ip);
}

/** Numeric order, IPv4 before IPv6. */
export function compareIps(a: Ip, b: Ip): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** `host:port` or `[v6]:port` with a literal address; undefined when it is not one. */
export function parseSocketAddress(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const host = m[1] ?? m[2] ?? '';
  const ip = parseIp(host);
  const port = Number(m[3]);
  if (!ip || (m[1] !== undefined && ip.family !== 6) || (m[2] !== undefined && ip.family !== 4))
    return undefined;
  if (port < 0 || port > 65535) return undefined;
  return { host: ip.text, port };
}
