// Small helpers shared by the DnsResourceNat tests: fixtures, draining effects, reaching a given state.
import {
  DnsResourceNat,
  type DnsResourceNatOptions,
  type Effect,
  type NatEntrySnapshot,
  type NatKey,
} from '../../../ts/client/dns-resource-nat.js';

export const GW = 'gw1';
export const RES = 'web';
export const DOMAIN = 'app.corp.example';
export const OTHER_DOMAIN = 'db.corp.example';
export const IPS = [
  '100.96.0.1',
  '100.96.0.2',
  '100.96.0.3',
  '100.96.0.4',
  'fd00:2021:1111:8000::1',
  'fd00:2021:1111:8000::2',
  'fd00:2021:1111:8000::3',
  'fd00:2021:1111:8000::4',
];
export const OTHER_IPS = ['100.96.0.5', '100.96.0.6', '100.96.0.7', '100.96.0.8'];

export const KEY: NatKey = { gatewayId: GW, domain: DOMAIN, resourceId: RES };
export const MATCH = { gatewayId: GW, resourceId: RES, proxyIps: IPS };

export type SendEffect = Extract<Effect, { type: 'send-assigned-ips' }>;

export function drain(nat: DnsResourceNat): Effect[] {
  const out: Effect[] = [];
  for (let effect = nat.pollEffect(); effect !== undefined; effect = nat.pollEffect()) out.push(effect);
  return out;
}

export function sendsIn(effects: Effect[]): SendEffect[] {
  return effects.filter((e): e is SendEffect => e.type === 'send-assigned-ips');
}

/** Effects without the send payload, for compact comparisons: e.g. 'gate:buffer', 'send', 'flush'. */
export function kinds(effects: Effect[]): string[] {
  return effects.map((e) =>
    e.type === 'gate' ? `gate:${e.mode}` : e.type === 'send-assigned-ips' ? 'send' : e.type,
  );
}

export function snapshotOf(nat: DnsResourceNat, key: NatKey = KEY): NatEntrySnapshot {
  const found = nat
    .entries()
    .find((e) => e.gatewayId === key.gatewayId && e.domain === key.domain && e.resourceId === key.resourceId);
  if (found === undefined) throw new Error(`no entry for ${JSON.stringify(key)}`);
  return found;
}

/** Delivers the gateway's answer to the entry's latest send. */
export function answer(
  nat: DnsResourceNat,
  status: 'active' | 'inactive',
  now: number,
  key: NatKey = KEY,
): void {
  const seq = snapshotOf(nat, key).lastSentSeq;
  nat.onDomainStatus(key.gatewayId, { domain: key.domain, resourceId: key.resourceId, status, seq }, now);
}

/** A machine with KEY pending (created by a query at `now`), effects drained. */
export function pendingNat(options?: DnsResourceNatOptions, now = 0): DnsResourceNat {
  const nat = new DnsResourceNat(options);
  nat.onDnsQuery(DOMAIN, [MATCH], now);
  drain(nat);
  return nat;
}

export function confirmedNat(options?: DnsResourceNatOptions, now = 0): DnsResourceNat {
  const nat = pendingNat(options, now);
  answer(nat, 'active', now);
  drain(nat);
  return nat;
}

export function failedNat(options?: DnsResourceNatOptions, now = 0): DnsResourceNat {
  const nat = pendingNat(options, now);
  answer(nat, 'inactive', now);
  drain(nat);
  return nat;
}

/** KEY in `recreating`: confirmed, then a query for its domain that did not go on to update it. */
export function recreatingNat(options?: DnsResourceNatOptions, now = 0): DnsResourceNat {
  const nat = confirmedNat(options, now);
  nat.onDnsQuery(DOMAIN, [], now);
  drain(nat);
  return nat;
}
