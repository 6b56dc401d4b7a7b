// Proxy IPs and answers: what a client may name as proxy IPs (checked in full, with the reason of the first
// failure), and the canonical order that the mapping rule (proxy k → real address k mod n) relies on.
import { compareIps, type Family, type Ip, isProxyIp, PROXY_V4, PROXY_V6, parseIp } from '../../net/ip.js';
import type { IpStack } from '../config.js';
import { type Answer, type RejectReason, stackAllows } from './types.js';

export function answerCovers(answer: Answer, family: Family): boolean {
  return (family === 4 ? answer.ipv4 : answer.ipv6).length > 0;
}

export function sortedIps(texts: readonly string[], family: Family): Ip[] {
  const seen = new Map<string, Ip>();
  for (const t of texts) {
    const ip = parseIp(t);
    if (ip && ip.family === family) seen.set(ip.text, ip);
  }
  return [...seen.values()].sort(compareIps);
}

export function sameIps(a: readonly Ip[], b: readonly Ip[]): boolean {
  return a.length === b.length && a.every((ip, i) => ip.text === b[i]?.text);
}

/** Validation (docs/architecture.md#the-gateways-policy): 4 or 8 distinct proxy IPs, inside the proxy ranges, 0 or 4 per family, of the resource's stack. */
export function checkProxyIps(
  value: unknown,
  stack: IpStack,
): { ips: Ip[] } | { reason: RejectReason; detail: string } {
  if (!Array.isArray(value) || (value.length !== 4 && value.length !== 8)) {
    const n = Array.isArray(value) ? `${value.length}` : 'no list';
    return { reason: 'proxy-ip-count', detail: `expected 4 or 8 proxy IPs, got ${n}` };
  }
  const ips: Ip[] = [];
  const seen = new Set<string>();
  for (const v of value) {
    const ip = typeof v === 'string' ? parseIp(v) : undefined;
    if (!ip) return { reason: 'proxy-ip-invalid', detail: `not an IP address: ${JSON.stringify(v)}` };
    if (!isProxyIp(ip)) {
      return {
        reason: 'proxy-ip-out-of-range',
        detail: `${ip.text} is outside ${PROXY_V4.text} and ${PROXY_V6.text}`,
      };
    }
    if (seen.has(ip.text)) return { reason: 'proxy-ip-duplicate', detail: `${ip.text} appears twice` };
    seen.add(ip.text);
    if (!stackAllows(stack, ip.family)) {
      return { reason: 'proxy-ip-stack', detail: `${ip.text} is IPv${ip.family}, the resource is ${stack}` };
    }
    ips.push(ip);
  }
  const v4 = ips.filter((i) => i.family === 4).length;
  if (v4 !== 0 && v4 !== 4) {
    return {
      reason: 'proxy-ip-count',
      detail: `expected 0 or 4 per family, got ${v4} IPv4 and ${ips.length - v4} IPv6`,
    };
  }
  return { ips: ips.sort(compareIps) };
}
