//! The two keys of a NAT session.
//!
//! Inside: what the client sent, (protocol, client port or echo id, proxy IP).
//! Outside: what the real host sees, (protocol, chosen port or id, real IP).
//! The remote port is in neither key: the mapping is endpoint-independent
//! (RFC 4787 REQ-1), so one client port keeps one outside port whatever
//! server port it talks to. The real IP *is* in the outside key: two domains
//! that resolve to the same real IP are told apart by the port alone, and the
//! allocator makes sure the ports differ.

use std::net::IpAddr;

/// The transport protocols the NAT translates. ICMP means echo (v4 or v6;
/// the family is in the address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    /// The lowest port (or id) the allocator may hand out: port 0 is not a
    /// valid TCP/UDP port, echo id 0 is fine.
    pub(crate) fn first_port(self) -> u16 {
        match self {
            Protocol::Icmp => 0,
            Protocol::Tcp | Protocol::Udp => 1,
        }
    }
}

/// (protocol, client port or echo id, proxy IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InsideKey {
    pub protocol: Protocol,
    pub port: u16,
    pub proxy: IpAddr,
}

/// (protocol, chosen port or echo id, real IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutsideKey {
    pub protocol: Protocol,
    pub port: u16,
    pub real: IpAddr,
}
