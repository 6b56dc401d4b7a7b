// The population both state-machine benchmarks measure against: n tracked
// domains, 90 % confirmed and 10 % failed, as on a long-running client, every
// entry set up at time 0; and the same population in the naive scanner.
import { DnsResourceNat } from '../ts/client/dns-resource-nat.js';
import { NaiveDnsResourceNat } from './naive-dns-resource-nat.js';

export const IPS = ['100.96.0.1', '100.96.0.2', '100.96.0.3', '100.96.0.4'];
export const MATCH = [{ gatewayId: 'gw1', resourceId: 'web', proxyIps: IPS }];
export const domainOf = (i: number) => `host-${i}.corp.example`;

export function indexed(n: number): DnsResourceNat {
  const nat = new DnsResourceNat();
  for (let i = 0; i < n; i++) {
    nat.onDnsQuery(domainOf(i), MATCH, 0);
    const status = i % 10 === 9 ? 'inactive' : 'active';
    nat.onDomainStatus('gw1', { domain: domainOf(i), resourceId: 'web', status, seq: i + 1 }, 0);
  }
  while (nat.pollEffect() !== undefined) {}
  return nat;
}

export function naive(n: number): NaiveDnsResourceNat {
  const nat = new NaiveDnsResourceNat();
  for (let i = 0; i < n; i++)
    nat.seed('gw1', domainOf(i), 'web', IPS, i % 10 === 9 ? 'failed' : 'confirmed', 0);
  return nat;
}
