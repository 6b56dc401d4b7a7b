//! One NAT session and the rule that decides when it ends.

use std::net::IpAddr;

use super::config::IdleLimits;
use super::key::{InsideKey, OutsideKey, Protocol};
use super::time::Timestamp;

/// A translation (protocol, client port, proxy IP) ⇄ (protocol, outside port,
/// real IP), with what is needed to expire it.
///
/// The real IP is fixed for the life of the session: when the domain is
/// re-resolved, live sessions keep the address they started with and only new
/// sessions use the new one (docs/architecture.md#one-packet), so round-robin DNS never cuts a
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Session {
    pub inside: InsideKey,
    pub outside_port: u16,
    pub real: IpAddr,
    /// Destination port of the packet that opened the session; a packet to
    /// another port re-checks the resource's port filter.
    pub dst_port: u16,
    pub last_out: Timestamp,
    /// `None` until the first inbound packet: the session is "unanswered".
    pub last_in: Option<Timestamp>,
    pub fin_out: bool,
    pub fin_in: bool,
    /// Deadline of this session's live entry in the timer queue.
    pub queued: Timestamp,
}

/// The idle limits in nanoseconds, converted once: `Duration` arithmetic goes
/// through `u128` and the deadline is computed on every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    tcp: u64,
    udp: u64,
    icmp: u64,
    unanswered: u64,
    fin: u64,
}

impl From<&IdleLimits> for Limits {
    fn from(l: &IdleLimits) -> Limits {
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Limits {
            tcp: ns(l.tcp),
            udp: ns(l.udp),
            icmp: ns(l.icmp),
            unanswered: ns(l.unanswered),
            fin: ns(l.fin),
        }
    }
}

impl Session {
    pub fn outside(&self) -> OutsideKey {
        OutsideKey {
            protocol: self.inside.protocol,
            port: self.outside_port,
            real: self.real,
        }
    }

    /// When the session expires if no further packet arrives: the earliest
    /// of the limits that apply.
    pub fn deadline(&self, limits: &Limits) -> Timestamp {
        let last = match self.last_in {
            Some(t) => t.max(self.last_out),
            None => self.last_out,
        };
        let idle = match self.inside.protocol {
            Protocol::Tcp => limits.tcp,
            Protocol::Udp => limits.udp,
            Protocol::Icmp => limits.icmp,
        };
        let mut deadline = last.add_nanos(idle);
        if self.last_in.is_none() {
            deadline = deadline.min(self.last_out.add_nanos(limits.unanswered));
        }
        if self.fin_out && self.fin_in {
            deadline = deadline.min(last.add_nanos(limits.fin));
        }
        deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn session(protocol: Protocol) -> Session {
        Session {
            inside: InsideKey {
                protocol,
                port: 1000,
                proxy: "100.96.0.1".parse().unwrap(),
            },
            outside_port: 1000,
            real: "198.18.0.1".parse().unwrap(),
            dst_port: 80,
            last_out: Timestamp::from_secs(10),
            last_in: None,
            fin_out: false,
            fin_in: false,
            queued: Timestamp::ZERO,
        }
    }

    #[test]
    fn each_limit_applies() {
        let l = Limits::from(&IdleLimits::default());
        let mut s = session(Protocol::Tcp);
        assert_eq!(s.deadline(&l), Timestamp::from_secs(70), "unanswered");
        s.last_in = Some(Timestamp::from_secs(20));
        assert_eq!(
            s.deadline(&l),
            Timestamp::from_secs(20) + Duration::from_secs(7440)
        );
        s.fin_out = true;
        assert_eq!(
            s.deadline(&l),
            Timestamp::from_secs(20) + Duration::from_secs(7440)
        );
        s.fin_in = true;
        assert_eq!(s.deadline(&l), Timestamp::from_secs(25), "fin both ways");
        let mut u = session(Protocol::Udp);
        u.last_in = Some(Timestamp::from_secs(5));
        assert_eq!(
            u.deadline(&l),
            Timestamp::from_secs(130),
            "udp from last packet"
        );
        let mut i = session(Protocol::Icmp);
        i.last_in = Some(Timestamp::from_secs(11));
        assert_eq!(i.deadline(&l), Timestamp::from_secs(131));
    }
}
