//! TCP header view (RFC 9293): ports, flags and the checksum.
//!
//! The NAT needs the ports (to key and rewrite sessions), the flags (FIN and
//! RST end sessions) and the checksum (to patch). Options and payload are
//! never read.

use super::ParseError;
use super::checksum::{Delta, adjust_at, get_u16, replace_u16};

pub const MIN_HEADER_LEN: usize = 20;
pub const CHECKSUM_OFFSET: usize = 16;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// A view over a TCP segment (header complete, data offset checked).
#[derive(Debug)]
pub struct TcpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// `buf` is the IP payload: the segment exactly.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let data_offset = usize::from(b[12] >> 4) * 4;
        if data_offset < MIN_HEADER_LEN || data_offset > b.len() {
            return Err(ParseError::BadHeaderLength);
        }
        Ok(TcpPacket { buf })
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }

    /// The low eight flag bits (CWR … FIN).
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[13]
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), CHECKSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Rewrites the source port, patching the checksum.
    pub fn set_src_port(&mut self, port: u16) {
        let b = self.buf.as_mut();
        let d = replace_u16(b, 0, port);
        adjust_at(b, CHECKSUM_OFFSET, d);
    }

    /// Rewrites the destination port, patching the checksum.
    pub fn set_dst_port(&mut self, port: u16) {
        let b = self.buf.as_mut();
        let d = replace_u16(b, 2, port);
        adjust_at(b, CHECKSUM_OFFSET, d);
    }

    /// Applies a pseudo-header delta (an address changed).
    pub fn adjust_checksum(&mut self, delta: Delta) {
        adjust_at(self.buf.as_mut(), CHECKSUM_OFFSET, delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rewrites() {
        let mut seg = [0u8; 24];
        seg[0..2].copy_from_slice(&1234u16.to_be_bytes());
        seg[2..4].copy_from_slice(&443u16.to_be_bytes());
        seg[12] = 6 << 4;
        seg[13] = SYN | ACK;
        seg[16..18].copy_from_slice(&0x1111u16.to_be_bytes());
        let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (1234, 443));
        assert_eq!(t.flags() & (SYN | ACK), SYN | ACK);
        t.set_src_port(1235);
        assert_eq!(t.src_port(), 1235);
        // One more in a word lowers the stored checksum by one.
        assert_eq!(t.checksum(), 0x1110);
    }

    #[test]
    fn rejects_bad_offsets() {
        let mut seg = [0u8; 20];
        assert_eq!(
            TcpPacket::new_checked(&seg[..19]).unwrap_err(),
            ParseError::Truncated
        );
        seg[12] = 4 << 4;
        assert_eq!(
            TcpPacket::new_checked(&seg[..]).unwrap_err(),
            ParseError::BadHeaderLength
        );
        seg[12] = 6 << 4;
        assert_eq!(
            TcpPacket::new_checked(&seg[..]).unwrap_err(),
            ParseError::BadHeaderLength
        );
    }
}
