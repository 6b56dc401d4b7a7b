// /etc/resolv.conf: where the default upstream comes from, and what
// `manageDns` points at the sentinel and restores on exit.
import { readFileSync } from 'node:fs';

import { ADDRESS_PLAN } from '../protocol/address-plan.js';

export const SENTINEL_V4 = ADDRESS_PLAN.sentinelV4;
export const SENTINEL_V6 = ADDRESS_PLAN.sentinelV6;

/** The `nameserver` lines of a resolv.conf, minus our own sentinels. */
export function nameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const ns = m?.[1]?.replace(/%.*$/, '');
    if (ns && ns !== SENTINEL_V4 && ns !== SENTINEL_V6) out.push(ns);
  }
  return out;
}

const MARKER = '# written by dnsnat; restored on exit';

/** Whether resolv.conf text is what `manageDns` wrote. */
export const isManagedResolvConf = (text: string): boolean => text.includes(MARKER);

/** What `manageDns` writes: the sentinels, keeping the search/options lines of the original. */
export function managedResolvConf(original: string): string {
  const kept = original.split('\n').filter((l) => /^\s*(search|domain|options)\b/.test(l));
  return [MARKER, `nameserver ${SENTINEL_V4}`, `nameserver ${SENTINEL_V6}`, ...kept, ''].join('\n');
}

export function readResolvConf(path = '/etc/resolv.conf'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
