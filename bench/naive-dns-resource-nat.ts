// The baseline for the state-machine benchmark: the same query semantics as DnsResourceNat, written the way
// connlib does it, where every DNS query walks every tracked entry (recreate the queried domain's entries, then
// "update" each one, which resends the pending entries that are due). Only what the benchmark calls is here;
// it is not a product implementation and nothing else imports it.
import type { DnsQueryMatch, Effect } from '../ts/client/dns-resource-nat.js';

type State = 'pending' | 'recreating' | 'confirmed' | 'failed';

interface NaiveEntry {
  gatewayId: string;
  domain: string;
  resourceId: string;
  proxyIps: string[];
  state: State;
  lastSentAt: number;
  unanswered: number;
  seq: number;
}

export class NaiveDnsResourceNat {
  private readonly entries = new Map<string, NaiveEntry>();
  private readonly effects: Effect[] = [];
  private nextSeq = 1;

  constructor(
    private readonly resendIntervalMs = 2_000,
    private readonly maxUnansweredSends = 6,
  ) {}

  /** Bench set-up only: inserts an entry in a given state without the O(n) query path. */
  seed(
    gatewayId: string,
    domain: string,
    resourceId: string,
    proxyIps: string[],
    state: State,
    now: number,
  ): void {
    const entry = { gatewayId, domain, resourceId, proxyIps, state, lastSentAt: now, unanswered: 1, seq: 0 };
    this.entries.set(`${gatewayId}|${domain}|${resourceId}`, entry);
  }

  onDnsQuery(domain: string, matches: readonly DnsQueryMatch[], nowMs: number): void {
    const d = domain.toLowerCase().replace(/\.$/, '');
    for (const entry of this.entries.values()) {
      if (entry.domain !== d) continue;
      if (entry.state === 'confirmed' || entry.state === 'failed') entry.state = 'recreating';
    }
    for (const m of matches) {
      const id = `${m.gatewayId}|${d}|${m.resourceId}`;
      if (!this.entries.has(id)) {
        this.seed(m.gatewayId, d, m.resourceId, m.proxyIps, 'recreating', nowMs);
      }
    }
    // The scan: every entry is looked at on every query.
    for (const entry of this.entries.values()) {
      if (entry.state === 'recreating' && entry.domain === d) {
        entry.state = 'pending';
        entry.unanswered = 0;
        this.send(entry, nowMs);
      } else if (entry.state === 'pending' && nowMs - entry.lastSentAt >= this.resendIntervalMs) {
        if (entry.unanswered >= this.maxUnansweredSends) entry.state = 'failed';
        else this.send(entry, nowMs);
      }
    }
  }

  onDomainStatus(gatewayId: string, status: { domain: string; resourceId: string; status: string }): void {
    const entry = this.entries.get(`${gatewayId}|${status.domain}|${status.resourceId}`);
    if (entry !== undefined) entry.state = status.status === 'active' ? 'confirmed' : 'failed';
  }

  pollEffect(): Effect | undefined {
    return this.effects.pop();
  }

  size(): number {
    return this.entries.size;
  }

  private send(entry: NaiveEntry, now: number): void {
    entry.lastSentAt = now;
    entry.unanswered++;
    entry.seq = this.nextSeq++;
    this.effects.push({
      type: 'send-assigned-ips',
      gatewayId: entry.gatewayId,
      domain: entry.domain,
      resourceId: entry.resourceId,
      proxyIps: entry.proxyIps,
      seq: entry.seq,
    });
  }
}
