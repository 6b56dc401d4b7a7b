//! What a translation returns: every outcome is a value.
//!
//! The caller forwards, counts a drop, or builds and sends back an ICMP error.
//! On anything but [`Verdict::Forward`] the packet buffer is left exactly as it
//! came in, so an ICMP error can quote it.

use std::net::IpAddr;

use crate::packet::ParseError;

/// The outcome of translating one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The buffer was rewritten in place; send it on.
    Forward,
    /// Do not send anything; count the reason.
    Drop(DropReason),
    /// Do not forward; answer the sender with this ICMP error, built with
    /// [`IcmpError::write`] from the (untouched) packet.
    Reply(IcmpError),
}

/// Why the gateway answers a client's packet with an ICMP error instead of
/// forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpError {
    /// The destination is a proxy IP the client never assigned (no
    /// `AssignedIps` for it reached this gateway). Host/address unreachable.
    UnknownProxy,
    /// The proxy IP is registered but has no real address of its family: the
    /// domain did not resolve (yet), or resolves only in the other family.
    /// Host/address unreachable.
    NoRealAddress,
    /// The policy of the resource forbids this protocol or port.
    /// Communication administratively prohibited.
    Prohibited,
}

/// Why a packet was dropped. `#[repr(u8)]` with dense values, so
/// `reason as usize` indexes a counter array ([`DropCounters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    // Malformed input (see `packet::ParseError`).
    Truncated,
    BadIpVersion,
    BadHeaderLength,
    BadIpLength,
    BadTransportLength,
    BadIpv6ExtensionHeader,
    Ipv6RoutingHeader,
    /// An ICMP error whose quoted packet cannot be read.
    MalformedQuote,
    // Well-formed, but not something the NAT translates.
    /// A fragment that cannot be translated: a later fragment whose first
    /// one was not seen (or too long ago), or a fragmented ICMP error.
    Fragment,
    /// Neither TCP, UDP nor ICMP.
    UnsupportedProtocol,
    /// An ICMP message other than echo (outbound) or echo reply and the
    /// translatable errors (inbound).
    UnsupportedIcmp,
    /// An ICMP error sent by the client (as Firezone: not translated).
    OutboundIcmpError,
    // Addressing and policy.
    /// Outbound source is not one of the client's tunnel IPs.
    SourceNotClient,
    /// Inbound destination is not one of the client's tunnel IPs.
    DestinationNotClient,
    /// Outbound destination outside the proxy ranges.
    NotProxyDestination,
    // Sessions.
    /// Inbound packet that matches no session (and no recent one).
    NoSession,
    /// Inbound packet for a session that has expired.
    ExpiredSession,
    /// The client has as many sessions as the configuration allows.
    SessionLimit,
    /// Every port (or ICMP id) towards that real address is taken.
    PortsExhausted,
    /// A TCP RST that would open a session (there is nothing to reset).
    RstWithoutSession,
    /// An ICMP error quoting a packet that is not from this client, or that
    /// matches no session.
    IcmpErrorNoMatch,
    /// An ICMP error would have been generated, but the rate limit is spent.
    IcmpRateLimited,
}

impl DropReason {
    /// Every reason, in counter-index order.
    pub const ALL: [DropReason; 22] = [
        DropReason::Truncated,
        DropReason::BadIpVersion,
        DropReason::BadHeaderLength,
        DropReason::BadIpLength,
        DropReason::BadTransportLength,
        DropReason::BadIpv6ExtensionHeader,
        DropReason::Ipv6RoutingHeader,
        DropReason::MalformedQuote,
        DropReason::Fragment,
        DropReason::UnsupportedProtocol,
        DropReason::UnsupportedIcmp,
        DropReason::OutboundIcmpError,
        DropReason::SourceNotClient,
        DropReason::DestinationNotClient,
        DropReason::NotProxyDestination,
        DropReason::NoSession,
        DropReason::ExpiredSession,
        DropReason::SessionLimit,
        DropReason::PortsExhausted,
        DropReason::RstWithoutSession,
        DropReason::IcmpErrorNoMatch,
        DropReason::IcmpRateLimited,
    ];

    /// Number of reasons (the size of a counter array).
    pub const COUNT: usize = Self::ALL.len();

    /// The counter index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadIpVersion => "bad_ip_version",
            DropReason::BadHeaderLength => "bad_header_length",
            DropReason::BadIpLength => "bad_ip_length",
            DropReason::BadTransportLength => "bad_transport_length",
            DropReason::BadIpv6ExtensionHeader => "bad_ipv6_extension_header",
            DropReason::Ipv6RoutingHeader => "ipv6_routing_header",
            DropReason::MalformedQuote => "malformed_quote",
            DropReason::Fragment => "fragment",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::UnsupportedIcmp => "unsupported_icmp",
            DropReason::OutboundIcmpError => "outbound_icmp_error",
            DropReason::SourceNotClient => "source_not_client",
            DropReason::DestinationNotClient => "destination_not_client",
            DropReason::NotProxyDestination => "not_proxy_destination",
            DropReason::NoSession => "no_session",
            DropReason::ExpiredSession => "expired_session",
            DropReason::SessionLimit => "session_limit",
            DropReason::PortsExhausted => "ports_exhausted",
            DropReason::RstWithoutSession => "rst_without_session",
            DropReason::IcmpErrorNoMatch => "icmp_error_no_match",
            DropReason::IcmpRateLimited => "icmp_rate_limited",
        }
    }
}

impl From<ParseError> for DropReason {
    fn from(e: ParseError) -> DropReason {
        match e {
            ParseError::Truncated => DropReason::Truncated,
            ParseError::BadVersion => DropReason::BadIpVersion,
            ParseError::BadHeaderLength => DropReason::BadHeaderLength,
            ParseError::BadTotalLength => DropReason::BadIpLength,
            ParseError::BadTransportLength => DropReason::BadTransportLength,
            ParseError::BadExtensionHeader => DropReason::BadIpv6ExtensionHeader,
            ParseError::RoutingHeader => DropReason::Ipv6RoutingHeader,
        }
    }
}

/// One counter per [`DropReason`]; a convenience for callers and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::COUNT]);

impl DropCounters {
    pub fn record(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.0[r.index()]))
    }
}

/// Something the caller should act on, queued by the NAT and taken with
/// `ClientNat::poll_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatEvent {
    /// Traffic reached a proxy IP whose mapping has no real address: resolve
    /// its domain again (the self-healing of docs/architecture.md#the-gateways-policy). Emitted at most
    /// once per `NatConfig::resolve_event_interval` per proxy IP; the caller
    /// applies its per-domain backoff on top.
    ResolveUnmapped { proxy: IpAddr },
    /// A new session used a mapping whose DNS TTL has passed: re-resolve in
    /// the background while the old address keeps serving.
    RefreshExpired { proxy: IpAddr },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_names_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn counters_count() {
        let mut c = DropCounters::default();
        c.record(DropReason::NoSession);
        c.record(DropReason::NoSession);
        assert_eq!(c.get(DropReason::NoSession), 2);
        assert_eq!(c.get(DropReason::Fragment), 0);
        assert_eq!(c.iter().map(|(_, n)| n).sum::<u64>(), 2);
    }
}
