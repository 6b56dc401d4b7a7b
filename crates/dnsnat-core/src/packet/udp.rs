//! UDP header view (RFC 768).
//!
//! A zero checksum over IPv4 means "no checksum" and must stay zero after a
//! rewrite; a checksum that *computes* to zero is sent as 0xffff instead. Over
//! IPv6 a zero checksum is invalid (RFC 8200 §8.1) and the receiver drops the
//! datagram; we leave it zero rather than turn it into a plausible value.

use super::ParseError;
use super::checksum::{Delta, get_u16, put_u16, replace_u16};

pub const HEADER_LEN: usize = 8;
pub const CHECKSUM_OFFSET: usize = 6;

/// A view over a UDP datagram (header complete, length field consistent).
#[derive(Debug)]
pub struct UdpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// `buf` is the IP payload. The length field must cover the header and
    /// fit the payload.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let len = usize::from(get_u16(b, 4));
        if len < HEADER_LEN || len > b.len() {
            return Err(ParseError::BadTransportLength);
        }
        Ok(UdpPacket { buf })
    }

    /// Checks the first fragment of a datagram: the header must be there,
    /// the length field may exceed the bytes present (it counts the whole
    /// datagram).
    pub fn new_first_fragment(buf: T) -> Result<Self, ParseError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if usize::from(get_u16(b, 4)) < HEADER_LEN {
            return Err(ParseError::BadTransportLength);
        }
        Ok(UdpPacket { buf })
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }

    pub fn length(&self) -> u16 {
        get_u16(self.buf.as_ref(), 4)
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), CHECKSUM_OFFSET)
    }
}

/// Applies `delta` to the UDP checksum at `off` of `buf`, honouring the
/// "zero means none" rule. Shared with the quoted-packet rewrite of ICMP
/// errors, which only has the raw bytes. Returns the delta of the checksum
/// word itself (for a checksum that covers this one).
pub(crate) fn adjust_udp_checksum(buf: &mut [u8], off: usize, delta: Delta) -> Delta {
    let old = get_u16(buf, off);
    if old == 0 {
        return Delta::ZERO;
    }
    let mut new = delta.apply(old);
    if new == 0 {
        new = 0xffff;
    }
    put_u16(buf, off, new);
    Delta::ZERO.word(old, new)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, port: u16) {
        let b = self.buf.as_mut();
        let d = replace_u16(b, 0, port);
        adjust_udp_checksum(b, CHECKSUM_OFFSET, d);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        let b = self.buf.as_mut();
        let d = replace_u16(b, 2, port);
        adjust_udp_checksum(b, CHECKSUM_OFFSET, d);
    }

    /// Applies a pseudo-header delta (an address changed).
    pub fn adjust_checksum(&mut self, delta: Delta) {
        adjust_udp_checksum(self.buf.as_mut(), CHECKSUM_OFFSET, delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dgram(checksum: u16) -> [u8; 12] {
        let mut d = [0u8; 12];
        d[0..2].copy_from_slice(&5353u16.to_be_bytes());
        d[2..4].copy_from_slice(&53u16.to_be_bytes());
        d[4..6].copy_from_slice(&12u16.to_be_bytes());
        d[6..8].copy_from_slice(&checksum.to_be_bytes());
        d
    }

    #[test]
    fn zero_checksum_stays_zero() {
        let mut d = dgram(0);
        let mut u = UdpPacket::new_checked(&mut d[..]).unwrap();
        u.set_src_port(40000);
        u.adjust_checksum(Delta::ZERO.word(0x0a00, 0xc000));
        assert_eq!(u.src_port(), 40000);
        assert_eq!(u.checksum(), 0);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // A checksum of 0x0001 with one word rising by one computes to zero.
        let mut d = dgram(0x0001);
        let mut u = UdpPacket::new_checked(&mut d[..]).unwrap();
        u.adjust_checksum(Delta::ZERO.word(0x1000, 0x1001));
        assert_eq!(u.checksum(), 0xffff);
    }

    #[test]
    fn length_field_is_checked() {
        let mut d = dgram(0);
        d[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&d[..]).unwrap_err(),
            ParseError::BadTransportLength
        );
        d[5] = 13;
        assert_eq!(
            UdpPacket::new_checked(&d[..]).unwrap_err(),
            ParseError::BadTransportLength
        );
        assert_eq!(
            UdpPacket::new_checked(&d[..7]).unwrap_err(),
            ParseError::Truncated
        );
    }
}
