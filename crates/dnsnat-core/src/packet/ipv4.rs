//! IPv4 header view (RFC 791).
//!
//! The header checksum is not verified on read: the kernel on either side
//! verifies it anyway, and an incremental update keeps a wrong checksum wrong
//! (RFC 1624 §5), so skipping the check saves work without letting a corrupt
//! packet turn valid.

use std::net::Ipv4Addr;

use super::ParseError;
use super::checksum::{self, Delta, adjust_at, get_u16};

pub const MIN_HEADER_LEN: usize = 20;
const CHECKSUM: usize = 10;
const SRC: usize = 12;
const DST: usize = 16;

/// A view over an IPv4 packet whose header is known to be complete.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T> {
    buf: T,
    header_len: usize,
    /// End of the packet inside `buf`: the total length, or less for a
    /// truncated packet quoted by an ICMP error.
    end: usize,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks a whole packet: the header and the total length must fit the
    /// buffer. Bytes after the total length (there are none on a TUN device)
    /// are ignored.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        let (header_len, total) = Self::check_header(buf.as_ref())?;
        if total > buf.as_ref().len() {
            return Err(ParseError::Truncated);
        }
        Ok(Ipv4Packet {
            buf,
            header_len,
            end: total,
        })
    }

    /// Checks a packet quoted inside an ICMP error: the header must be
    /// complete, the rest may be cut short (RFC 792 quotes only 8 bytes of it).
    pub fn new_quoted(buf: T) -> Result<Self, ParseError> {
        let (header_len, total) = Self::check_header(buf.as_ref())?;
        let end = total.min(buf.as_ref().len());
        Ok(Ipv4Packet {
            buf,
            header_len,
            end,
        })
    }

    fn check_header(b: &[u8]) -> Result<(usize, usize), ParseError> {
        if b.len() < MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(ParseError::BadVersion);
        }
        let header_len = usize::from(b[0] & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(ParseError::BadHeaderLength);
        }
        if header_len > b.len() {
            return Err(ParseError::Truncated);
        }
        let total = usize::from(get_u16(b, 2));
        if total < header_len {
            return Err(ParseError::BadTotalLength);
        }
        Ok((header_len, total))
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The total length field.
    pub fn total_len(&self) -> usize {
        usize::from(get_u16(self.b(), 2))
    }

    pub fn ident(&self) -> u16 {
        get_u16(self.b(), 4)
    }

    pub fn dont_fragment(&self) -> bool {
        self.b()[6] & 0x40 != 0
    }

    pub fn more_fragments(&self) -> bool {
        self.b()[6] & 0x20 != 0
    }

    /// Fragment offset in bytes.
    pub fn fragment_offset(&self) -> usize {
        usize::from(get_u16(self.b(), 6) & 0x1fff) * 8
    }

    /// Whether this is any fragment of a larger datagram.
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.fragment_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }

    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }

    pub fn header_checksum(&self) -> u16 {
        get_u16(self.b(), CHECKSUM)
    }

    pub fn src(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[SRC], b[SRC + 1], b[SRC + 2], b[SRC + 3])
    }

    pub fn dst(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[DST], b[DST + 1], b[DST + 2], b[DST + 3])
    }

    /// The bytes after the header, up to the total length (or the end of a
    /// quoted packet).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len..self.end]
    }

    /// Whether the header checksum is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(0, &self.b()[..self.header_len])
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// Rewrites the source address, patches the header checksum and returns
    /// the delta for checksums whose pseudo-header includes the address.
    pub fn set_src(&mut self, addr: Ipv4Addr) -> Delta {
        self.set_addr(SRC, addr)
    }

    /// Rewrites the destination address; see [`Self::set_src`].
    pub fn set_dst(&mut self, addr: Ipv4Addr) -> Delta {
        self.set_addr(DST, addr)
    }

    fn set_addr(&mut self, off: usize, addr: Ipv4Addr) -> Delta {
        let new = addr.octets();
        let b = self.bm();
        let delta = Delta::ZERO.bytes(&b[off..off + 4], &new);
        b[off..off + 4].copy_from_slice(&new);
        adjust_at(b, CHECKSUM, delta);
        delta
    }

    /// Patches the header checksum for a change made inside the header.
    pub fn adjust_checksum(&mut self, delta: Delta) {
        adjust_at(self.bm(), CHECKSUM, delta);
    }

    /// The bytes after the header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len, self.end);
        &mut self.bm()[start..end]
    }

    /// Recomputes the header checksum from scratch (packets the core builds).
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len;
        let b = self.bm();
        b[CHECKSUM..CHECKSUM + 2].fill(0);
        let c = checksum::finish(checksum::sum(&b[..hl]));
        b[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[0; 8]);
        let mut v = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        v.fill_checksum();
        p
    }

    #[test]
    fn reads_fields() {
        let p = sample();
        let v = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.header_len(), 20);
        assert_eq!(v.total_len(), 28);
        assert_eq!(v.protocol(), 17);
        assert_eq!(v.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(v.dst(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(v.dont_fragment());
        assert!(!v.is_fragment());
        assert_eq!(v.payload().len(), 8);
        assert!(v.verify_checksum());
    }

    #[test]
    fn rewrite_keeps_checksum_valid() {
        let mut p = sample();
        let mut v = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        let d = v.set_dst(Ipv4Addr::new(192, 0, 2, 200));
        assert!(!d.is_zero());
        assert_eq!(v.dst(), Ipv4Addr::new(192, 0, 2, 200));
        assert!(v.verify_checksum());
    }

    #[test]
    fn rejects_malformed() {
        let p = sample();
        assert_eq!(
            Ipv4Packet::new_checked(&p[..19]).unwrap_err(),
            ParseError::Truncated
        );
        let mut bad = p.clone();
        bad[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            ParseError::BadHeaderLength
        );
        let mut bad = p.clone();
        bad[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            ParseError::BadVersion
        );
        let mut bad = p.clone();
        bad[3] = 40;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            ParseError::Truncated
        );
        // ...but a quoted packet may be cut short.
        assert_eq!(Ipv4Packet::new_quoted(&bad[..]).unwrap().payload().len(), 8);
        let mut bad = p;
        bad[3] = 10;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            ParseError::BadTotalLength
        );
    }
}
