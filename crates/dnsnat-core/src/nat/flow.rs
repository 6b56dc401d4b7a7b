//! The transport part of a packet: which session it belongs to and how its
//! port (or echo id) is rewritten.

use super::key::Protocol;
use super::verdict::DropReason;
use crate::packet::checksum::{Delta, get_u16, put_u16, replace_u16};
use crate::packet::icmp::{self, IcmpKind, IcmpPacket};
use crate::packet::ip::{Fragment, IpInfo};
use crate::packet::proto;
use crate::packet::tcp::{self, TcpPacket};
use crate::packet::udp::{self, UdpPacket, adjust_udp_checksum};

/// Offsets of the rewritten fields inside a transport header.
pub(crate) const SRC_PORT: usize = 0;
pub(crate) const DST_PORT: usize = 2;
pub(crate) const ECHO_ID: usize = icmp::ID_OFFSET;

/// What the NAT needs from a TCP segment, UDP datagram or ICMP echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flow {
    pub protocol: Protocol,
    /// Source port, or the echo id.
    pub src_port: u16,
    /// Destination port, or the echo id.
    pub dst_port: u16,
    pub fin: bool,
    pub rst: bool,
}

/// How a packet's transport layer reads.
pub(crate) enum Transport {
    Flow(Flow),
    /// An ICMP error that quotes a packet (destination unreachable, packet
    /// too big, time exceeded).
    TranslatableIcmpError,
    /// Any other ICMP error.
    OtherIcmpError,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Outbound,
    Inbound,
}

/// Reads the transport header of a whole packet or a first fragment. Echo requests are
/// flows outbound only and echo replies inbound only: the gateway opens
/// sessions, it never answers pings on behalf of the client.
pub(crate) fn classify(pkt: &[u8], info: &IpInfo, dir: Direction) -> Result<Transport, DropReason> {
    let l4 = &pkt[info.l4_offset..info.end];
    match info.protocol {
        proto::TCP => {
            let t = TcpPacket::new_checked(l4)?;
            Ok(Transport::Flow(Flow {
                protocol: Protocol::Tcp,
                src_port: t.src_port(),
                dst_port: t.dst_port(),
                fin: t.flags() & tcp::FIN != 0,
                rst: t.flags() & tcp::RST != 0,
            }))
        }
        proto::UDP => {
            let u = if info.fragment == Fragment::First {
                UdpPacket::new_first_fragment(l4)?
            } else {
                UdpPacket::new_checked(l4)?
            };
            Ok(Transport::Flow(Flow {
                protocol: Protocol::Udp,
                src_port: u.src_port(),
                dst_port: u.dst_port(),
                fin: false,
                rst: false,
            }))
        }
        p if p == info.icmp_protocol() => {
            let m = IcmpPacket::new_checked(l4)?;
            let kind = if info.is_v4() {
                IcmpKind::v4(m.msg_type())
            } else {
                IcmpKind::v6(m.msg_type())
            };
            match (kind, dir) {
                (IcmpKind::EchoRequest, Direction::Outbound)
                | (IcmpKind::EchoReply, Direction::Inbound) => Ok(Transport::Flow(Flow {
                    protocol: Protocol::Icmp,
                    src_port: m.echo_id(),
                    dst_port: m.echo_id(),
                    fin: false,
                    rst: false,
                })),
                (IcmpKind::TranslatableError, _) => Ok(Transport::TranslatableIcmpError),
                (IcmpKind::OtherError, _) => Ok(Transport::OtherIcmpError),
                _ => Err(DropReason::UnsupportedIcmp),
            }
        }
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

/// Offset of the checksum inside the transport header.
pub(crate) fn checksum_offset(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Tcp => tcp::CHECKSUM_OFFSET,
        Protocol::Udp => udp::CHECKSUM_OFFSET,
        Protocol::Icmp => icmp::CHECKSUM_OFFSET,
    }
}

/// Whether the transport checksum covers the IP addresses (everything but
/// ICMPv4).
pub(crate) fn has_pseudo_header(protocol: Protocol, v4: bool) -> bool {
    !(protocol == Protocol::Icmp && v4)
}

/// Rewrites the 16-bit field at `field` of the transport header `l4` to
/// `port` and patches its checksum for that change plus `pseudo` (the address
/// change, applied only where a pseudo-header exists). Returns the combined
/// delta of the two changed words (field and checksum), which a checksum that
/// covers this header (an ICMP error's) must absorb; when the checksum lies
/// beyond `l4` (a quoted header cut short) only the field is changed.
pub(crate) fn rewrite_port(
    l4: &mut [u8],
    protocol: Protocol,
    v4: bool,
    field: usize,
    port: u16,
    pseudo: Delta,
) -> Delta {
    let field_delta = replace_u16(l4, field, port);
    let mut inner = field_delta;
    if has_pseudo_header(protocol, v4) {
        inner = inner.plus(pseudo);
    }
    let ck = checksum_offset(protocol);
    if ck + 2 > l4.len() {
        return field_delta;
    }
    let ck_delta = if protocol == Protocol::Udp {
        adjust_udp_checksum(l4, ck, inner)
    } else {
        let old = get_u16(l4, ck);
        let new = inner.apply(old);
        put_u16(l4, ck, new);
        Delta::ZERO.word(old, new)
    };
    field_delta.plus(ck_delta)
}
