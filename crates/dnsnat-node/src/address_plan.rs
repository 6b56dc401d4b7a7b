//! The address plan for JavaScript, from the core's constants: the one
//! definition both languages use (docs/architecture.md#address-plan).

use dnsnat_core::constants::{
    PROXY_IPS_PER_FAMILY, PROXY_V4_NET, PROXY_V4_PREFIX, PROXY_V6_NET, PROXY_V6_PREFIX,
    SENTINEL_V4, SENTINEL_V6, TUNNEL_V4_NET, TUNNEL_V4_PREFIX, TUNNEL_V6_NET, TUNNEL_V6_PREFIX,
};
use napi_derive::napi;

/// Where every address of dnsnat comes from.
#[napi(object)]
pub struct AddressPlan {
    /// Proxy IPs, IPv4 (`100.96.0.0/11`).
    pub proxy_v4: String,
    /// Proxy IPs, IPv6.
    pub proxy_v6: String,
    /// The peers' own addresses inside the tunnel, IPv4.
    pub tunnel_v4: String,
    /// The same, IPv6.
    pub tunnel_v6: String,
    /// Where the client's stub listens, IPv4.
    pub sentinel_v4: String,
    /// The same, IPv6.
    pub sentinel_v6: String,
    /// Proxy IPs a name gets in each family.
    pub proxy_ips_per_family: u32,
}

#[napi]
pub fn address_plan() -> AddressPlan {
    AddressPlan {
        proxy_v4: format!("{PROXY_V4_NET}/{PROXY_V4_PREFIX}"),
        proxy_v6: format!("{PROXY_V6_NET}/{PROXY_V6_PREFIX}"),
        tunnel_v4: format!("{TUNNEL_V4_NET}/{TUNNEL_V4_PREFIX}"),
        tunnel_v6: format!("{TUNNEL_V6_NET}/{TUNNEL_V6_PREFIX}"),
        sentinel_v4: SENTINEL_V4.to_string(),
        sentinel_v6: SENTINEL_V6.to_string(),
        proxy_ips_per_family: PROXY_IPS_PER_FAMILY as u32,
    }
}
