//! IPv6 header view (RFC 8200) with extension-header skipping.
//!
//! IPv6 has no header checksum; the addresses are covered only through the
//! pseudo-header of TCP, UDP and ICMPv6, so the setters return the delta for
//! the caller to apply there.
//!
//! To find the transport header the chain of extension headers is walked.
//! The walk is bounded ([`MAX_EXTENSION_HEADERS`]) so a packet made of nothing
//! but empty option headers costs a fixed amount of work.

use std::net::Ipv6Addr;

use super::ParseError;
use super::checksum::{Delta, get_u16};

pub const HEADER_LEN: usize = 40;
const SRC: usize = 8;
const DST: usize = 24;

/// Extension headers walked before giving up. Real traffic carries zero to
/// two; eight is generous and keeps the worst case small.
pub const MAX_EXTENSION_HEADERS: usize = 8;

pub const HOP_BY_HOP: u8 = 0;
pub const ROUTING: u8 = 43;
pub const FRAGMENT: u8 = 44;
pub const AUTH: u8 = 51;
pub const DEST_OPTS: u8 = 60;
pub const NO_NEXT: u8 = 59;

/// Where the upper-layer header starts, found by walking extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The protocol of the first header that is not an extension header.
    pub protocol: u8,
    /// Its offset from the start of the packet.
    pub offset: usize,
    /// The fragment header, if there is one.
    pub fragment: Option<FragmentHeader>,
}

/// What an IPv6 fragment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Offset of this fragment's data, in bytes.
    pub offset: usize,
    pub more: bool,
    pub ident: u32,
}

/// A view over an IPv6 packet whose fixed header is known to be complete.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T> {
    buf: T,
    end: usize,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Checks a whole packet: the payload length must fit the buffer. A zero
    /// payload length (a jumbogram) is rejected; no dnsnat link carries one.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        let total = Self::check_header(buf.as_ref())?;
        if total > buf.as_ref().len() {
            return Err(ParseError::Truncated);
        }
        Ok(Ipv6Packet { buf, end: total })
    }

    /// Checks a packet quoted inside an ICMPv6 error, which may be cut short.
    pub fn new_quoted(buf: T) -> Result<Self, ParseError> {
        let total = Self::check_header(buf.as_ref())?;
        let end = total.min(buf.as_ref().len());
        Ok(Ipv6Packet { buf, end })
    }

    fn check_header(b: &[u8]) -> Result<usize, ParseError> {
        if b.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(ParseError::BadVersion);
        }
        let payload = usize::from(get_u16(b, 4));
        if payload == 0 && b[6] == HOP_BY_HOP {
            return Err(ParseError::BadTotalLength);
        }
        Ok(HEADER_LEN + payload)
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn payload_len(&self) -> usize {
        usize::from(get_u16(self.b(), 4))
    }

    /// End of the packet (40 + payload length, or less when quoted).
    pub fn end(&self) -> usize {
        self.end
    }

    pub fn next_header(&self) -> u8 {
        self.b()[6]
    }

    pub fn hop_limit(&self) -> u8 {
        self.b()[7]
    }

    pub fn src(&self) -> Ipv6Addr {
        let mut o = [0; 16];
        o.copy_from_slice(&self.b()[SRC..SRC + 16]);
        Ipv6Addr::from(o)
    }

    pub fn dst(&self) -> Ipv6Addr {
        let mut o = [0; 16];
        o.copy_from_slice(&self.b()[DST..DST + 16]);
        Ipv6Addr::from(o)
    }

    /// Walks the extension headers to the upper-layer header.
    ///
    /// Hop-by-hop, destination options, routing (only with no segments left)
    /// and authentication headers are skipped; a fragment header is recorded.
    /// The walk stops at the first other next-header value, which is returned
    /// as the protocol (this includes ESP and "no next header", which the NAT
    /// then refuses as unsupported). Every header must lie within the packet.
    pub fn upper_layer(&self) -> Result<UpperLayer, ParseError> {
        let b = &self.b()[..self.end];
        let mut next = self.next_header();
        let mut off = HEADER_LEN;
        let mut fragment = None;
        for _ in 0..=MAX_EXTENSION_HEADERS {
            let len = match next {
                HOP_BY_HOP | DEST_OPTS | ROUTING => {
                    let h = b.get(off..off + 2).ok_or(ParseError::BadExtensionHeader)?;
                    if next == ROUTING {
                        let segments_left =
                            *b.get(off + 3).ok_or(ParseError::BadExtensionHeader)?;
                        if segments_left != 0 {
                            return Err(ParseError::RoutingHeader);
                        }
                    }
                    (usize::from(h[1]) + 1) * 8
                }
                AUTH => {
                    let h = b.get(off..off + 2).ok_or(ParseError::BadExtensionHeader)?;
                    (usize::from(h[1]) + 2) * 4
                }
                FRAGMENT => {
                    let h = b.get(off..off + 8).ok_or(ParseError::BadExtensionHeader)?;
                    let word = get_u16(h, 2);
                    fragment = Some(FragmentHeader {
                        offset: usize::from(word & 0xfff8),
                        more: word & 1 != 0,
                        ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    });
                    8
                }
                protocol => {
                    return Ok(UpperLayer {
                        protocol,
                        offset: off,
                        fragment,
                    });
                }
            };
            if off + len > b.len() {
                return Err(ParseError::BadExtensionHeader);
            }
            next = b[off];
            off += len;
        }
        Err(ParseError::BadExtensionHeader)
    }

    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Rewrites the source address and returns the pseudo-header delta.
    pub fn set_src(&mut self, addr: Ipv6Addr) -> Delta {
        self.set_addr(SRC, addr)
    }

    /// Rewrites the destination address and returns the pseudo-header delta.
    pub fn set_dst(&mut self, addr: Ipv6Addr) -> Delta {
        self.set_addr(DST, addr)
    }

    fn set_addr(&mut self, off: usize, addr: Ipv6Addr) -> Delta {
        let new = addr.octets();
        let b = self.buf.as_mut();
        let delta = Delta::ZERO.bytes(&b[off..off + 16], &new);
        b[off..off + 16].copy_from_slice(&new);
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
        p.push(next);
        p.push(64);
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(ext);
        p.extend_from_slice(l4);
        p
    }

    #[test]
    fn no_extension_headers() {
        let p = packet(17, &[], &[0; 8]);
        let v = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            v.upper_layer().unwrap(),
            UpperLayer {
                protocol: 17,
                offset: 40,
                fragment: None
            }
        );
    }

    #[test]
    fn skips_hop_by_hop_dest_opts_and_fragment() {
        // HBH (8 bytes, next = DEST_OPTS), DEST_OPTS (16 bytes, next = FRAGMENT),
        // FRAGMENT (offset 0, M=1, next = TCP).
        let mut ext = vec![DEST_OPTS, 0, 0, 0, 0, 0, 0, 0];
        ext.extend_from_slice(&[FRAGMENT, 1]);
        ext.extend_from_slice(&[0; 14]);
        ext.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]);
        let p = packet(HOP_BY_HOP, &ext, &[0; 20]);
        let up = Ipv6Packet::new_checked(&p[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(up.protocol, 6);
        assert_eq!(up.offset, 40 + 8 + 16 + 8);
        assert_eq!(
            up.fragment,
            Some(FragmentHeader {
                offset: 0,
                more: true,
                ident: 7
            })
        );
    }

    #[test]
    fn routing_header_with_segments_left_is_refused() {
        let ext = [17, 0, 0, 1, 0, 0, 0, 0];
        let p = packet(ROUTING, &ext, &[0; 8]);
        let v = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.upper_layer().unwrap_err(), ParseError::RoutingHeader);
        let ext = [17, 0, 0, 0, 0, 0, 0, 0];
        let p = packet(ROUTING, &ext, &[0; 8]);
        let v = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.upper_layer().unwrap().offset, 48);
    }

    #[test]
    fn truncated_or_endless_chains_are_errors() {
        // Claims 16 bytes of options but only 8 are there.
        let p = packet(HOP_BY_HOP, &[17, 1, 0, 0, 0, 0, 0, 0], &[]);
        let v = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.upper_layer().unwrap_err(), ParseError::BadExtensionHeader);
        // Ten destination-option headers in a row.
        let mut ext = Vec::new();
        for _ in 0..10 {
            ext.extend_from_slice(&[DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        let p = packet(DEST_OPTS, &ext, &[]);
        let v = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.upper_layer().unwrap_err(), ParseError::BadExtensionHeader);
    }

    #[test]
    fn length_checks() {
        let mut p = packet(17, &[], &[0; 8]);
        assert_eq!(
            Ipv6Packet::new_checked(&p[..39]).unwrap_err(),
            ParseError::Truncated
        );
        p[5] = 9;
        assert_eq!(
            Ipv6Packet::new_checked(&p[..]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(Ipv6Packet::new_quoted(&p[..]).unwrap().end(), 48);
        p[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&p[..]).unwrap_err(),
            ParseError::BadVersion
        );
    }
}
