//! ICMP errors the gateway generates itself, built into a caller's buffer.
//!
//! The error comes from the proxy IP the client tried to reach (the client
//! accepts only proxy IPs from a gateway, and it names the destination that
//! failed) and goes to the client. It quotes as much of the offending packet
//! as fits in 576 bytes for IPv4 (RFC 1812 §4.3.2.3) and 1,280 for IPv6
//! (RFC 4443 §2.4 c), so the client's stack can match it to a socket. These
//! packets are built from scratch, so their checksums are computed in full.

use std::net::IpAddr;

use super::verdict::IcmpError;
use crate::packet::checksum::{finish, pseudo_header_sum, put_u16, sum};
use crate::packet::icmp::{v4, v6};
use crate::packet::ip::IpInfo;
use crate::packet::ipv4::Ipv4Packet;
use crate::packet::proto;

/// Largest packet [`IcmpError::write`] produces; a buffer this big always fits.
pub const MAX_REPLY_LEN: usize = 1280;
const V4_LIMIT: usize = 576;
const V4_HEADERS: usize = 20 + 8;
const V6_HEADERS: usize = 40 + 8;
/// Hop limit of generated errors.
const TTL: u8 = 64;

impl IcmpError {
    /// The ICMP (type, code) of this error for the given family.
    pub fn type_code(self, ipv4: bool) -> (u8, u8) {
        match (self, ipv4) {
            (IcmpError::Prohibited, true) => (v4::DEST_UNREACHABLE, v4::CODE_ADMIN_PROHIBITED),
            (_, true) => (v4::DEST_UNREACHABLE, v4::CODE_HOST_UNREACHABLE),
            (IcmpError::Prohibited, false) => (v6::DEST_UNREACHABLE, v6::CODE_ADMIN_PROHIBITED),
            (_, false) => (v6::DEST_UNREACHABLE, v6::CODE_ADDRESS_UNREACHABLE),
        }
    }

    /// Writes the error answering `original` (the client's packet, as it was
    /// passed to `translate_outbound`) into `out`, returning its length, or
    /// `None` if `original` is not a packet or `out` cannot hold the headers.
    pub fn write(self, original: &[u8], out: &mut [u8]) -> Option<usize> {
        let info = IpInfo::parse(original).ok()?;
        let (ty, code) = self.type_code(info.is_v4());
        // The quote never goes past the original's IP length.
        let original = &original[..info.end];
        match (info.dst, info.src) {
            (IpAddr::V4(from), IpAddr::V4(to)) => {
                let room = out.len().min(V4_LIMIT).checked_sub(V4_HEADERS)?;
                let quote = original.len().min(room);
                let total = V4_HEADERS + quote;
                let o = &mut out[..total];
                o[..20].copy_from_slice(&[
                    0x45,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    TTL,
                    proto::ICMP,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ]);
                put_u16(o, 2, total as u16);
                o[12..16].copy_from_slice(&from.octets());
                o[16..20].copy_from_slice(&to.octets());
                o[20..28].copy_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
                o[28..].copy_from_slice(&original[..quote]);
                let ck = finish(sum(&o[20..]));
                put_u16(o, 22, ck);
                Ipv4Packet::new_checked(&mut *o).ok()?.fill_checksum();
                Some(total)
            }
            (IpAddr::V6(from), IpAddr::V6(to)) => {
                let room = out.len().min(MAX_REPLY_LEN).checked_sub(V6_HEADERS)?;
                let quote = original.len().min(room);
                let total = V6_HEADERS + quote;
                let o = &mut out[..total];
                o[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, proto::ICMPV6, TTL]);
                put_u16(o, 4, (total - 40) as u16);
                o[8..24].copy_from_slice(&from.octets());
                o[24..40].copy_from_slice(&to.octets());
                o[40..48].copy_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
                o[48..].copy_from_slice(&original[..quote]);
                let pseudo =
                    pseudo_header_sum(from.into(), to.into(), proto::ICMPV6, (total - 40) as u32);
                let ck = finish(pseudo + sum(&o[40..]));
                put_u16(o, 42, ck);
                Some(total)
            }
            _ => None,
        }
    }
}
