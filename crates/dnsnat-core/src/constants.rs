//! The address plan and limits (docs/architecture.md#address-plan), in one place.
//!
//! These values are part of the wire contract between client and gateway (a
//! gateway validates proxy IPs against the ranges below), so changing one is a
//! protocol change, not a tuning knob.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Proxy IPv4 range handed to applications: `100.96.0.0/11`.
pub const PROXY_V4_NET: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 0);
pub const PROXY_V4_PREFIX: u8 = 11;
/// Proxy IPv6 range: `fd00:2021:1111:8000::/107`.
pub const PROXY_V6_NET: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x2021, 0x1111, 0x8000, 0, 0, 0, 0);
pub const PROXY_V6_PREFIX: u8 = 107;

/// The DNS server addresses the client owns on its TUN device (port 53).
pub const SENTINEL_V4: Ipv4Addr = Ipv4Addr::new(100, 100, 111, 1);
pub const SENTINEL_V6: Ipv6Addr = Ipv6Addr::new(
    0xfd00, 0x2021, 0x1111, 0x8000, 0x0100, 0x0100, 0x0111, 0x0001,
);

/// Tunnel addresses of the peers themselves.
pub const TUNNEL_V4_NET: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
pub const TUNNEL_V4_PREFIX: u8 = 11;
pub const TUNNEL_V6_NET: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x2021, 0x1111, 0, 0, 0, 0, 0);
pub const TUNNEL_V6_PREFIX: u8 = 107;

/// Proxy IPs per domain and family.
pub const PROXY_IPS_PER_FAMILY: usize = 4;

/// MTU of every dnsnat TUN device.
pub const TUN_MTU: u16 = 1280;

fn v4_in(addr: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(addr) & mask == u32::from(net) & mask
}

fn v6_in(addr: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(addr) & mask == u128::from(net) & mask
}

/// Whether `addr` lies in the IPv4 proxy range.
pub fn is_proxy_v4(addr: Ipv4Addr) -> bool {
    v4_in(addr, PROXY_V4_NET, PROXY_V4_PREFIX)
}

/// Whether `addr` lies in the IPv6 proxy range.
pub fn is_proxy_v6(addr: Ipv6Addr) -> bool {
    v6_in(addr, PROXY_V6_NET, PROXY_V6_PREFIX)
}

/// Whether `addr` lies in the sentinel's IPv4 /24, which the allocator never hands out.
pub fn is_sentinel_v4_net(addr: Ipv4Addr) -> bool {
    v4_in(addr, SENTINEL_V4, 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_v4_range_bounds() {
        assert!(is_proxy_v4(Ipv4Addr::new(100, 96, 0, 0)));
        assert!(is_proxy_v4(Ipv4Addr::new(100, 127, 255, 255)));
        assert!(!is_proxy_v4(Ipv4Addr::new(100, 128, 0, 0)));
        assert!(!is_proxy_v4(Ipv4Addr::new(100, 95, 255, 255)));
    }

    #[test]
    fn proxy_v6_range_bounds() {
        assert!(is_proxy_v6("fd00:2021:1111:8000::1".parse().unwrap()));
        // A /107 leaves 21 host bits: the range ends at ...:8000::1f:ffff.
        assert!(is_proxy_v6("fd00:2021:1111:8000::1f:ffff".parse().unwrap()));
        assert!(!is_proxy_v6("fd00:2021:1111:8000::20:0".parse().unwrap()));
        assert!(!is_proxy_v6("fd00:2021:1111::1".parse().unwrap()));
    }

    #[test]
    fn sentinel_placement() {
        // The IPv4 sentinel lives inside the proxy range, so the allocator must
        // skip its /24; the IPv6 one lies outside the (much smaller) /107.
        assert!(is_proxy_v4(SENTINEL_V4));
        assert!(is_sentinel_v4_net(Ipv4Addr::new(100, 100, 111, 200)));
        assert!(!is_sentinel_v4_net(Ipv4Addr::new(100, 100, 112, 1)));
        assert!(!is_proxy_v6(SENTINEL_V6));
    }
}
