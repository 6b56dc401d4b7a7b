// Operations per second of the client's NAT state machine with 100, 10,000 and 100,000 tracked domains,
// next to a naive implementation that scans every entry on every query, in one run.
//
// Run: npm run bench:state-machine
//
// What to read: within each group, vitest prints how many times faster the fastest task is than the others.
// For DnsResourceNat the 100 → 100,000 ratio should stay near 1 (work per input does not grow with settled
// entries); for the naive scan it grows roughly with n. No assertion is made here: timings belong in reports,
// never in tests (the counted-work test in __test__/client/dns-resource-nat-cost.test.ts asserts the claim).
//
// The population: 90 % confirmed, 10 % failed, as on a long-running client; every entry was set up at time 0.
// Each operation advances a fake clock by 1 ms.
import { bench, describe } from 'vitest';
import { domainOf, indexed, MATCH, naive } from './state-machine-population.js';

const SIZES = [100, 10_000, 100_000];

const machines = SIZES.map((n) => ({ n, indexed: indexed(n), naive: naive(n), now: 0 }));
const label = (n: number) => n.toLocaleString('en-US');

describe('onDnsQuery for a non-resource name (the resend check of every query)', () => {
  for (const m of machines) {
    bench(`DnsResourceNat, ${label(m.n)} tracked`, () => {
      m.now++;
      m.indexed.onDnsQuery('www.example.com', [], m.now);
    });
  }
  for (const m of machines) {
    bench(`naive scan, ${label(m.n)} tracked`, () => {
      m.now++;
      m.naive.onDnsQuery('www.example.com', [], m.now);
    });
  }
});

describe('onDnsQuery for a confirmed resource domain, then its DomainStatus (a refresh)', () => {
  for (const m of machines) {
    let i = 0;
    bench(`DnsResourceNat, ${label(m.n)} tracked`, () => {
      m.now++;
      const domain = domainOf((i++ * 10) % m.n); // multiples of 10 are confirmed entries
      m.indexed.onDnsQuery(domain, MATCH, m.now);
      const sent = m.indexed.pollEffect();
      const seq = sent?.type === 'send-assigned-ips' ? sent.seq : undefined;
      m.indexed.onDomainStatus('gw1', { domain, resourceId: 'web', status: 'active', seq }, m.now);
      while (m.indexed.pollEffect() !== undefined) {}
    });
  }
  for (const m of machines) {
    let i = 0;
    bench(`naive scan, ${label(m.n)} tracked`, () => {
      m.now++;
      const domain = domainOf((i++ * 10) % m.n);
      m.naive.onDnsQuery(domain, MATCH, m.now);
      m.naive.pollEffect();
      m.naive.onDomainStatus('gw1', { domain, resourceId: 'web', status: 'active' });
    });
  }
});
