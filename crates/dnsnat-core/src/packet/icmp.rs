//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) views.
//!
//! Both share the first eight bytes: type, code, checksum and a four-byte
//! "rest of header", which holds the identifier and sequence of an echo and is
//! unused (or an MTU) in the errors the NAT translates. The families differ in
//! type numbers and in the checksum: ICMPv6 covers a pseudo-header, ICMPv4 does
//! not. [`IcmpKind`] folds the type numbers of both into what the NAT cares about.

use super::ParseError;
use super::checksum::{Delta, adjust_at, get_u16, replace_u16};

pub const HEADER_LEN: usize = 8;
pub const CHECKSUM_OFFSET: usize = 2;
pub const ID_OFFSET: usize = 4;

pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
    /// Destination unreachable codes.
    pub const CODE_HOST_UNREACHABLE: u8 = 1;
    pub const CODE_FRAG_NEEDED: u8 = 4;
    pub const CODE_ADMIN_PROHIBITED: u8 = 13;
}

pub mod v6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    /// Destination unreachable codes.
    pub const CODE_ADMIN_PROHIBITED: u8 = 1;
    pub const CODE_ADDRESS_UNREACHABLE: u8 = 3;
}

/// What an ICMP message is, as far as the NAT is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpKind {
    EchoRequest,
    EchoReply,
    /// Destination unreachable, packet too big or time exceeded: errors that
    /// quote the packet that caused them and that the NAT translates.
    TranslatableError,
    /// Parameter problem: an error, but one the NAT does not translate (the
    /// pointer it carries would need adjusting too).
    OtherError,
    /// Anything else (router advertisements, timestamps, …).
    Other,
}

impl IcmpKind {
    pub fn v4(ty: u8) -> IcmpKind {
        match ty {
            v4::ECHO_REQUEST => IcmpKind::EchoRequest,
            v4::ECHO_REPLY => IcmpKind::EchoReply,
            v4::DEST_UNREACHABLE | v4::TIME_EXCEEDED => IcmpKind::TranslatableError,
            v4::PARAMETER_PROBLEM | 4 | 5 => IcmpKind::OtherError,
            _ => IcmpKind::Other,
        }
    }

    pub fn v6(ty: u8) -> IcmpKind {
        match ty {
            v6::ECHO_REQUEST => IcmpKind::EchoRequest,
            v6::ECHO_REPLY => IcmpKind::EchoReply,
            v6::DEST_UNREACHABLE | v6::PACKET_TOO_BIG | v6::TIME_EXCEEDED => {
                IcmpKind::TranslatableError
            }
            // Types 0..=127 are errors (RFC 4443 §2.1).
            0..=127 => IcmpKind::OtherError,
            _ => IcmpKind::Other,
        }
    }

    /// Whether the message is an error of any kind. A NAT never answers an
    /// error with an error (RFC 1122 §3.2.2, RFC 4443 §2.4 e).
    pub fn is_error(self) -> bool {
        matches!(self, IcmpKind::TranslatableError | IcmpKind::OtherError)
    }
}

/// A view over an ICMP message (the eight-byte header is complete).
#[derive(Debug)]
pub struct IcmpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        Ok(IcmpPacket { buf })
    }

    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }

    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), CHECKSUM_OFFSET)
    }

    /// The echo identifier (meaningful for echo request and reply).
    pub fn echo_id(&self) -> u16 {
        get_u16(self.buf.as_ref(), ID_OFFSET)
    }

    pub fn echo_seq(&self) -> u16 {
        get_u16(self.buf.as_ref(), 6)
    }

    /// The bytes after the header: an echo's data or an error's quoted packet.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Rewrites the echo identifier, patching the checksum.
    pub fn set_echo_id(&mut self, id: u16) {
        let b = self.buf.as_mut();
        let d = replace_u16(b, ID_OFFSET, id);
        adjust_at(b, CHECKSUM_OFFSET, d);
    }

    /// Applies a delta: the ICMPv6 pseudo-header changed, or bytes of the
    /// payload were rewritten.
    pub fn adjust_checksum(&mut self, delta: Delta) {
        adjust_at(self.buf.as_mut(), CHECKSUM_OFFSET, delta);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(IcmpKind::v4(8), IcmpKind::EchoRequest);
        assert_eq!(IcmpKind::v4(0), IcmpKind::EchoReply);
        assert_eq!(IcmpKind::v4(3), IcmpKind::TranslatableError);
        assert_eq!(IcmpKind::v4(11), IcmpKind::TranslatableError);
        assert_eq!(IcmpKind::v4(12), IcmpKind::OtherError);
        assert_eq!(IcmpKind::v4(13), IcmpKind::Other);
        assert_eq!(IcmpKind::v6(2), IcmpKind::TranslatableError);
        assert_eq!(IcmpKind::v6(4), IcmpKind::OtherError);
        assert_eq!(IcmpKind::v6(135), IcmpKind::Other);
        assert!(IcmpKind::v6(100).is_error());
        assert!(!IcmpKind::v6(128).is_error());
    }

    #[test]
    fn echo_id_rewrite() {
        let mut m = [8u8, 0, 0xf7, 0xfd, 0, 1, 0, 1];
        let mut v = IcmpPacket::new_checked(&mut m[..]).unwrap();
        assert_eq!(v.echo_id(), 1);
        v.set_echo_id(2);
        assert_eq!(v.echo_id(), 2);
        assert_eq!(v.checksum(), 0xf7fc);
        assert!(IcmpPacket::new_checked(&m[..7]).is_err());
    }
}
