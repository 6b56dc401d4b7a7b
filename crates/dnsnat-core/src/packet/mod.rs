//! Zero-copy views over IP packets, with in-place rewriting.
//!
//! Each view wraps a borrowed buffer (`&[u8]` to read, `&mut [u8]` to rewrite)
//! after checking, once, that every field it exposes lies inside the buffer.
//! Accessors after that cannot go out of bounds, so a malformed packet is a
//! [`ParseError`] at construction and never a panic later (the model is
//! smoltcp's `wire` module). Nothing here allocates or copies a payload.
//!
//! Setters that change a field covered by a checksum patch that checksum
//! incrementally (RFC 1624, see [`checksum`]) and return the [`checksum::Delta`]
//! so the caller can carry it into the checksums that cover the field
//! indirectly (the TCP/UDP pseudo-header, an ICMP error's outer checksum).
//!
//! [`ip`] ties the family-specific views together into the one parse the NAT
//! needs: family, addresses, transport protocol and where its header starts.

pub mod build;
pub mod checksum;
pub mod icmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

/// IP protocol numbers the core understands.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// Why a buffer is not a packet this crate can read.
///
/// Each variant has a stable place in [`crate::nat::DropReason`], so a counter
/// per malformation is possible without string matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the fixed header, or than a length field claims.
    #[error("packet truncated")]
    Truncated,
    /// Neither IPv4 nor IPv6 in the version nibble.
    #[error("unknown IP version")]
    BadVersion,
    /// An IPv4 IHL below 5 or a TCP data offset below 5 or past the end.
    #[error("bad header length")]
    BadHeaderLength,
    /// An IP total/payload length that contradicts the header or the buffer.
    #[error("bad IP length")]
    BadTotalLength,
    /// A UDP length field that contradicts the IP payload length.
    #[error("bad transport length")]
    BadTransportLength,
    /// An IPv6 extension header chain that is truncated or too long.
    #[error("bad IPv6 extension header chain")]
    BadExtensionHeader,
    /// An IPv6 routing header with segments left: the destination address is
    /// not the final one, so the pseudo-header cannot be known.
    #[error("IPv6 routing header with segments left")]
    RoutingHeader,
}
