// The gateway's Prometheus families: the policy's counters and gauges, the shell's own, the event loop's lag
// and every tunnel counter. A pure function of what the shell hands in, so the daemon only gathers inputs.
import type { GatewayClient } from './config.js';
import { type MetricFamily, metricName } from './metrics.js';
import type { GatewayPolicy } from './policy.js';

export interface GatewayMetricsInputs {
  readonly policy: GatewayPolicy;
  readonly clients: readonly GatewayClient[];
  readonly shell: {
    readonly commandErrors: number;
    readonly handlerErrors: number;
    readonly reloadsOk: number;
    readonly reloadsRejected: number;
  };
  readonly logLinesSuppressed: number;
  /** Event-loop delay over the last window, in seconds. */
  readonly lag: { readonly p99Seconds: number; readonly maxSeconds: number };
  /** The tunnel's counters by name (empty once it stopped). */
  readonly tunnelCounters: Record<string, number>;
}

function counter(
  name: string,
  help: string,
  value: number,
  type: 'counter' | 'gauge' = 'counter',
): MetricFamily {
  return { name, help, type, samples: [{ value }] };
}

export function gatewayMetricFamilies(i: GatewayMetricsInputs): MetricFamily[] {
  const p = i.policy;
  const k = p.counters;
  const c = counter;
  const tunnel = Object.entries(i.tunnelCounters)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => c(metricName(`dnsnat_tunnel_${name}_total`), `Tunnel counter ${name}.`, value));
  return [
    {
      name: 'dnsnat_gateway_assigned_ips_total',
      help: 'AssignedIps messages by result (and rejection reason).',
      type: 'counter',
      samples: [
        { labels: { result: 'accepted' }, value: k.assignedIpsAccepted },
        { labels: { result: 'duplicate' }, value: k.assignedIpsDuplicate },
        ...Object.entries(k.assignedIpsRejected).map(([reason, value]) => ({
          labels: { result: 'rejected', reason },
          value,
        })),
      ],
    },
    c(
      'dnsnat_gateway_control_malformed_total',
      'Control messages dropped because their body failed validation.',
      k.controlMalformed,
    ),
    c(
      'dnsnat_gateway_control_ignored_total',
      'Control messages of a type the gateway does not handle.',
      k.controlIgnored,
    ),
    {
      name: 'dnsnat_gateway_domain_status_sent_total',
      help: 'DomainStatus messages sent, by status.',
      type: 'counter',
      samples: [
        { labels: { status: 'active' }, value: k.statusesSent.active },
        { labels: { status: 'inactive' }, value: k.statusesSent.inactive },
      ],
    },
    c(
      'dnsnat_gateway_unsolicited_status_total',
      'DomainStatus sent without a request (healed or lost).',
      k.unsolicitedStatuses,
    ),
    c(
      'dnsnat_gateway_renumber_resets_total',
      'Bindings dropped because the client gave their proxy IPs to another domain.',
      k.renumberResets,
    ),
    c('dnsnat_gateway_resolutions_started_total', 'Resolutions started.', k.resolutionsStarted),
    c(
      'dnsnat_gateway_resolutions_joined_total',
      'Requests that joined a resolution already in flight.',
      k.resolutionsJoined,
    ),
    c(
      'dnsnat_gateway_resolutions_queued_total',
      'Resolutions that waited for a free slot.',
      k.resolutionsQueued,
    ),
    c(
      'dnsnat_gateway_resolutions_refused_total',
      'Resolutions refused: in-flight and queue full.',
      k.resolutionsRefused,
    ),
    c(
      'dnsnat_gateway_resolution_deadlines_total',
      'Resolutions ended by the policy deadline.',
      k.resolutionDeadlines,
    ),
    c(
      'dnsnat_gateway_resolution_late_answers_total',
      'Answers that arrived after their deadline.',
      k.lateAnswers,
    ),
    {
      name: 'dnsnat_gateway_resolutions_total',
      help: 'Finished resolutions by outcome.',
      type: 'counter',
      samples: Object.entries(k.resolutionOutcomes).map(([outcome, value]) => ({
        labels: { outcome },
        value,
      })),
    },
    c('dnsnat_gateway_resolution_cache_hits_total', 'Requests served from a cached answer.', k.cacheHits),
    c(
      'dnsnat_gateway_resolution_negative_cache_hits_total',
      'Requests served from a cached NXDOMAIN/no records.',
      k.negativeCacheHits,
    ),
    c(
      'dnsnat_gateway_heal_resolutions_total',
      'Resolutions started by traffic to an unmapped proxy IP.',
      k.healResolutions,
    ),
    c(
      'dnsnat_gateway_heal_suppressed_total',
      'Unmapped-traffic events inside the backoff.',
      k.healSuppressed,
    ),
    c(
      'dnsnat_gateway_refresh_resolutions_total',
      'Resolutions started by a mapping used past its TTL.',
      k.refreshResolutions,
    ),
    c(
      'dnsnat_gateway_unknown_proxy_events_total',
      'Runtime events for a proxy IP the policy does not hold.',
      k.unknownProxyEvents,
    ),
    c('dnsnat_gateway_policy_removals_total', 'Domains removed by a config change.', k.policyRemovals),
    c('dnsnat_gateway_resolutions_in_flight', 'Resolutions running now.', p.inFlight(), 'gauge'),
    c('dnsnat_gateway_resolutions_waiting', 'Domains waiting for a resolution slot.', p.queued(), 'gauge'),
    c('dnsnat_gateway_mappings', 'Registered proxy IPs over all clients.', p.mappingCount(), 'gauge'),
    c('dnsnat_gateway_command_errors_total', 'Runtime commands that failed.', i.shell.commandErrors),
    c(
      'dnsnat_gateway_handler_errors_total',
      'Tunnel events whose handling threw (logged, dropped).',
      i.shell.handlerErrors,
    ),
    c('dnsnat_gateway_log_lines_suppressed_total', 'Log lines over their rate limit.', i.logLinesSuppressed),
    c('dnsnat_gateway_bindings_expired_total', 'Bindings dropped after going idle.', k.bindingsExpired),
    c(
      'dnsnat_gateway_bindings_evicted_total',
      'Bindings dropped to make room for a new one (the client held its limit).',
      k.bindingsEvicted,
    ),
    c(
      'dnsnat_gateway_destinations_refused_total',
      'Resolved addresses the destination filter refused.',
      k.destinationsRefused,
    ),
    c(
      'dnsnat_gateway_client_resolutions_refused_total',
      'Resolutions refused because the client had its share pending.',
      k.resolutionsRefusedForClient,
    ),
    {
      name: 'dnsnat_gateway_bindings',
      help: 'Bindings (domain, resource) each client holds.',
      type: 'gauge',
      samples: i.clients.map((cl) => ({ labels: { client: cl.id }, value: p.bindingCount(cl.id) })),
    },
    c(
      'dnsnat_gateway_event_loop_lag_p99_seconds',
      'Event loop delay, 99th percentile over the last 10 s window.',
      i.lag.p99Seconds,
      'gauge',
    ),
    c(
      'dnsnat_gateway_event_loop_lag_max_seconds',
      'Event loop delay, maximum over the last 10 s window.',
      i.lag.maxSeconds,
      'gauge',
    ),
    {
      name: 'dnsnat_gateway_config_reloads_total',
      help: 'Config reloads by result.',
      type: 'counter',
      samples: [
        { labels: { result: 'applied' }, value: i.shell.reloadsOk },
        { labels: { result: 'rejected' }, value: i.shell.reloadsRejected },
      ],
    },
    {
      name: 'dnsnat_gateway_resolution_duration_seconds',
      help: 'Time from starting a resolution to its answer.',
      type: 'histogram',
      histogram: p.latency,
    },
    ...tunnel,
  ];
}
