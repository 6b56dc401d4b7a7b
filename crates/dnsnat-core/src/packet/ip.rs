//! The family-independent parse the NAT works from.
//!
//! [`IpInfo`] is a small `Copy` summary of one packet: addresses, transport
//! protocol, where the transport header starts and ends, and whether the
//! packet is a fragment. It is computed once, by the family's view, and then
//! the translation code reads and rewrites the buffer at the offsets it
//! names, so there is exactly one place per family that knows the layout.

use std::net::IpAddr;

use super::checksum::Delta;
use super::ipv4::Ipv4Packet;
use super::ipv6::Ipv6Packet;
use super::{ParseError, proto};

/// Fragment status of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment {
    /// A whole datagram.
    None,
    /// The first fragment: it carries the transport header.
    First,
    /// A later fragment: no transport header, only payload.
    Later,
}

/// The parts of an IP packet the NAT needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// Offset of the upper-layer header.
    pub l4_offset: usize,
    /// End of the packet (the IP length, or the buffer's end when quoted).
    pub end: usize,
    pub fragment: Fragment,
    /// The datagram's identification (IPv4 header, or IPv6 fragment header;
    /// zero for an IPv6 packet without one). Ties fragments together.
    pub ident: u32,
}

impl IpInfo {
    /// Parses a complete packet as read from a TUN device or a tunnel.
    pub fn parse(buf: &[u8]) -> Result<IpInfo, ParseError> {
        Self::parse_inner(buf, false)
    }

    /// Parses a packet quoted inside an ICMP error (may be cut short).
    pub fn parse_quoted(buf: &[u8]) -> Result<IpInfo, ParseError> {
        Self::parse_inner(buf, true)
    }

    fn parse_inner(buf: &[u8], quoted: bool) -> Result<IpInfo, ParseError> {
        match buf.first().map(|b| b >> 4) {
            Some(4) => {
                let p = if quoted {
                    Ipv4Packet::new_quoted(buf)?
                } else {
                    Ipv4Packet::new_checked(buf)?
                };
                let fragment = if p.fragment_offset() != 0 {
                    Fragment::Later
                } else if p.more_fragments() {
                    Fragment::First
                } else {
                    Fragment::None
                };
                Ok(IpInfo {
                    src: p.src().into(),
                    dst: p.dst().into(),
                    protocol: p.protocol(),
                    l4_offset: p.header_len(),
                    end: p.header_len() + p.payload().len(),
                    fragment,
                    ident: u32::from(p.ident()),
                })
            }
            Some(6) => {
                let p = if quoted {
                    Ipv6Packet::new_quoted(buf)?
                } else {
                    Ipv6Packet::new_checked(buf)?
                };
                let up = p.upper_layer()?;
                let fragment = match up.fragment {
                    None => Fragment::None,
                    // An "atomic fragment" (RFC 6946) is a whole datagram.
                    Some(f) if f.offset == 0 && !f.more => Fragment::None,
                    Some(f) if f.offset == 0 => Fragment::First,
                    Some(_) => Fragment::Later,
                };
                Ok(IpInfo {
                    src: p.src().into(),
                    dst: p.dst().into(),
                    protocol: up.protocol,
                    l4_offset: up.offset,
                    end: p.end(),
                    fragment,
                    ident: up.fragment.map_or(0, |f| f.ident),
                })
            }
            Some(_) => Err(ParseError::BadVersion),
            None => Err(ParseError::Truncated),
        }
    }

    pub fn is_v4(&self) -> bool {
        self.src.is_ipv4()
    }

    /// The ICMP protocol number of this packet's family.
    pub fn icmp_protocol(&self) -> u8 {
        if self.is_v4() {
            proto::ICMP
        } else {
            proto::ICMPV6
        }
    }

    /// Length of the transport segment (header and data) present.
    pub fn l4_len(&self) -> usize {
        self.end - self.l4_offset
    }
}

/// Rewrites the source address of the packet in `buf` (whose header was
/// parsed by [`IpInfo`]); patches the IPv4 header checksum and returns the
/// pseudo-header delta. A family mismatch (never produced by the NAT, which
/// refuses cross-family mappings) changes nothing.
pub fn set_src(buf: &mut [u8], addr: IpAddr) -> Delta {
    set_addr(buf, addr, true)
}

/// Rewrites the destination address; see [`set_src`].
pub fn set_dst(buf: &mut [u8], addr: IpAddr) -> Delta {
    set_addr(buf, addr, false)
}

fn set_addr(buf: &mut [u8], addr: IpAddr, src: bool) -> Delta {
    match addr {
        IpAddr::V4(a) => match Ipv4Packet::new_quoted(buf) {
            Ok(mut p) if src => p.set_src(a),
            Ok(mut p) => p.set_dst(a),
            Err(_) => Delta::ZERO,
        },
        IpAddr::V6(a) => match Ipv6Packet::new_quoted(buf) {
            Ok(mut p) if src => p.set_src(a),
            Ok(mut p) => p.set_dst(a),
            Err(_) => Delta::ZERO,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_classified() {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 1, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[0; 8]);
        assert_eq!(IpInfo::parse(&p).unwrap().fragment, Fragment::First);
        p[6] = 0x00;
        p[7] = 0x01;
        assert_eq!(IpInfo::parse(&p).unwrap().fragment, Fragment::Later);
        p[7] = 0;
        let info = IpInfo::parse(&p).unwrap();
        assert_eq!(info.fragment, Fragment::None);
        assert_eq!((info.l4_offset, info.end, info.l4_len()), (20, 28, 8));
    }

    #[test]
    fn family_mismatch_is_a_no_op() {
        let mut p = vec![
            0x45, 0, 0, 20, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let before = p.clone();
        assert!(set_dst(&mut p, "::1".parse().unwrap()).is_zero());
        assert_eq!(p, before);
    }

    #[test]
    fn empty_and_unknown_versions() {
        assert_eq!(IpInfo::parse(&[]).unwrap_err(), ParseError::Truncated);
        assert_eq!(IpInfo::parse(&[0x70]).unwrap_err(), ParseError::BadVersion);
    }
}
