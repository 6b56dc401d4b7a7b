//! Limits of the NAT, and their defaults (docs/architecture.md#one-packet).

use std::time::Duration;

/// How long a session may stay idle. The earliest applicable limit wins; a
/// RST in either direction ends a session at once and has no knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleLimits {
    /// Established TCP: 2 h 4 min, the floor of RFC 5382 REQ-5.
    pub tcp: Duration,
    /// UDP: 2 min (RFC 4787 REQ-5 asks for at least 2 min).
    pub udp: Duration,
    /// ICMP echo: 2 min.
    pub icmp: Duration,
    /// A session that never saw an inbound packet: 60 s after the last
    /// outbound one, so scans and dead servers do not pin ports for hours.
    pub unanswered: Duration,
    /// TCP after a FIN in each direction: 5 s after the last packet, enough
    /// for the final ACK and a retransmitted FIN.
    pub fin: Duration,
}

impl Default for IdleLimits {
    fn default() -> IdleLimits {
        IdleLimits {
            tcp: Duration::from_secs(2 * 3600 + 4 * 60),
            udp: Duration::from_secs(120),
            icmp: Duration::from_secs(120),
            unanswered: Duration::from_secs(60),
            fin: Duration::from_secs(5),
        }
    }
}

/// Configuration of one client's NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatConfig {
    pub limits: IdleLimits,
    /// Live sessions per client; past it new sessions are dropped
    /// (`SessionLimit`). Bounds memory against a client that opens flows
    /// without end.
    pub max_sessions: usize,
    /// Expired sessions remembered per client, so their late packets are
    /// counted as `ExpiredSession`; the oldest are forgotten first.
    pub max_tombstones: usize,
    /// How long an expired session is remembered at most.
    pub tombstone_ttl: Duration,
    /// Generated ICMP errors per second per client, and the burst allowed.
    pub icmp_errors_per_sec: u32,
    pub icmp_error_burst: u32,
    /// Minimum time between two `NatEvent`s for the same proxy IP.
    pub resolve_event_interval: Duration,
    /// Fragmented datagrams in flight per client whose later fragments can
    /// still be translated, and how long one is remembered.
    pub max_fragmented_datagrams: usize,
    pub fragment_ttl: Duration,
}

impl Default for NatConfig {
    fn default() -> NatConfig {
        NatConfig {
            limits: IdleLimits::default(),
            max_sessions: 65_536,
            max_tombstones: 4_096,
            tombstone_ttl: Duration::from_secs(600),
            icmp_errors_per_sec: 100,
            icmp_error_burst: 100,
            resolve_event_interval: Duration::from_secs(1),
            max_fragmented_datagrams: 1_024,
            fragment_ttl: Duration::from_secs(5),
        }
    }
}
