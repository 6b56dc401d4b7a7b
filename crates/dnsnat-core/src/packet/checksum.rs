//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! The NAT rewrites a handful of 16-bit words per packet (an address, a port,
//! an ICMP id). Recomputing a TCP checksum over 1,400 bytes to account for a
//! four-byte change would make translation cost proportional to the payload;
//! RFC 1624 instead adjusts the old checksum by the difference of the words
//! that changed, so the cost is constant.
//!
//! [`Delta`] collects those differences. One delta can be applied to several
//! checksums: an address change touches the IPv4 header checksum *and* the
//! TCP/UDP/ICMPv6 checksum (through the pseudo-header), and a change inside the
//! packet quoted by an ICMP error touches the inner checksums *and* the outer
//! ICMP checksum. Computing the delta once and applying it where it belongs is
//! both faster and harder to get wrong than updating field by field.
//!
//! The full sums ([`sum`], [`pseudo_header_sum`], [`finish`]) exist for packets
//! the core builds itself (generated ICMP errors) and for tests that check the
//! incremental result against a recomputation. The translation path never
//! calls them.

use std::net::IpAddr;

/// Ones-complement sum of `data` read as big-endian 16-bit words, an odd
/// trailing byte padded with zero, with carries deferred in a `u64`.
///
/// Deferring carries is safe for any buffer this crate sees: a `u64` holds
/// 2^48 words of 0xffff before it could overflow.
pub fn sum(data: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds a deferred-carry sum into a 16-bit ones-complement sum.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for a region whose deferred sum is `acc`
/// (computed with the checksum field itself set to zero).
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// Sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793, RFC 768, RFC 8200 §8.1).
///
/// Both forms reduce to "source, destination, protocol, length" under the
/// ones-complement sum, because the sum does not care about field layout.
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, protocol: u8, length: u32) -> u64 {
    let addrs = addr_sum(src) + addr_sum(dst);
    addrs + u64::from(protocol) + u64::from(length >> 16) + u64::from(length & 0xffff)
}

/// Whether a region that includes its own checksum field sums to "all ones",
/// i.e. carries a valid checksum. `extra` is a pseudo-header sum or zero.
pub fn is_valid(extra: u64, data: &[u8]) -> bool {
    fold(extra + sum(data)) == 0xffff
}

/// Ones-complement sum of an address's octets.
pub fn addr_sum(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => sum(&a.octets()),
        IpAddr::V6(a) => sum(&a.octets()),
    }
}

/// The accumulated difference between old and new 16-bit words, to be applied
/// to one or more checksums with RFC 1624 equation 3: `HC' = ~(~HC + ~m + m')`.
///
/// Equation 3 (rather than the older equation 2 of RFC 1141) is used because it
/// never produces the "negative zero" mistake: it yields 0x0000 only when the
/// true ones-complement checksum is 0xffff, which receivers accept either way
/// for TCP and ICMP; UDP over IPv4 is special-cased by its caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta(u64);

impl Delta {
    /// No change.
    pub const ZERO: Delta = Delta(0);

    /// Accounts for one 16-bit word changing from `old` to `new`.
    #[inline]
    #[must_use]
    pub fn word(self, old: u16, new: u16) -> Delta {
        Delta(self.0 + u64::from(!old) + u64::from(new))
    }

    /// Accounts for a run of bytes changing from `old` to `new`. Both have the
    /// same even length, and the run starts at an even offset of the region
    /// the checksum covers (true for every address and port field).
    #[inline]
    #[must_use]
    pub fn bytes(self, old: &[u8], new: &[u8]) -> Delta {
        debug_assert_eq!(old.len(), new.len());
        debug_assert_eq!(old.len() % 2, 0);
        let mut acc = self.0;
        for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
            acc += u64::from(!u16::from_be_bytes([o[0], o[1]]));
            acc += u64::from(u16::from_be_bytes([n[0], n[1]]));
        }
        Delta(acc)
    }

    /// Combines two deltas (the ones-complement sum is associative).
    #[inline]
    #[must_use]
    pub fn plus(self, other: Delta) -> Delta {
        Delta(self.0 + other.0)
    }

    /// Whether this delta provably changes nothing.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The checksum `checksum` becomes once the recorded changes are applied.
    #[inline]
    #[must_use]
    pub fn apply(self, checksum: u16) -> u16 {
        !fold(u64::from(!checksum) + self.0)
    }
}

/// Reads the big-endian `u16` at `off`.
#[inline]
pub(crate) fn get_u16(buf: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([buf[off], buf[off + 1]])
}

/// Writes the big-endian `u16` at `off`.
#[inline]
pub(crate) fn put_u16(buf: &mut [u8], off: usize, value: u16) {
    buf[off..off + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes `value` at `off` and returns the delta of that change.
#[inline]
pub(crate) fn replace_u16(buf: &mut [u8], off: usize, value: u16) -> Delta {
    let old = get_u16(buf, off);
    put_u16(buf, off, value);
    Delta::ZERO.word(old, value)
}

/// Replaces the checksum stored at `off` with `delta` applied to it.
#[inline]
pub(crate) fn adjust_at(buf: &mut [u8], off: usize, delta: Delta) {
    let old = get_u16(buf, off);
    put_u16(buf, off, delta.apply(old));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The worked example of RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to
    // ddf2 (with end-around carries).
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(finish(sum(&data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    // RFC 1624 §4: a header checksum of 0xdd2f whose word 0x5555 changes to
    // 0x3285 must become 0x0000, not 0xffff (the bug of equation 2).
    #[test]
    fn rfc1624_example() {
        assert_eq!(Delta::ZERO.word(0x5555, 0x3285).apply(0xdd2f), 0x0000);
    }

    #[test]
    fn pseudo_header_matches_layout() {
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let dst: IpAddr = "10.0.0.2".parse().unwrap();
        let layout = [10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 30];
        assert_eq!(
            fold(pseudo_header_sum(src, dst, 17, 30)),
            fold(sum(&layout))
        );
    }

    proptest! {
        // Changing any even-aligned run of bytes and applying the delta gives
        // the same checksum as recomputing from scratch (modulo the two
        // encodings of zero, which receivers treat alike).
        #[test]
        fn incremental_equals_full(
            mut data in proptest::collection::vec(any::<u8>(), 4..200),
            at in any::<prop::sample::Index>(),
            new in proptest::collection::vec(any::<u8>(), 2..18),
        ) {
            if data.len() % 2 == 1 { data.push(0); }
            let len = new.len() & !1;
            let max_start = (data.len() - len.min(data.len())) / 2;
            let start = at.index(max_start + 1) * 2;
            let end = (start + len).min(data.len()) & !1;
            let new = &new[..end - start];
            let before = finish(sum(&data));
            let delta = Delta::ZERO.bytes(&data[start..end], new);
            data[start..end].copy_from_slice(new);
            let after = finish(sum(&data));
            let inc = delta.apply(before);
            prop_assert!(inc == after || (inc == 0 && after == 0xffff) || (inc == 0xffff && after == 0),
                "incremental {inc:#06x} full {after:#06x}");
        }

        #[test]
        fn word_delta_round_trips(c in any::<u16>(), old in any::<u16>(), new in any::<u16>()) {
            let there = Delta::ZERO.word(old, new).apply(c);
            let back = Delta::ZERO.word(new, old).apply(there);
            prop_assert!(fold(u64::from(back)) == fold(u64::from(c)) || (back | c) == 0xffff);
        }
    }
}
