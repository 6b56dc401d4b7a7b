//! Proxy IP → real IP mappings and the port filter of their resource.
//!
//! The caller (the gateway's control logic) installs and removes mappings; the
//! NAT only reads them when a session is created, or when a live session is
//! used towards another destination port (the filter is checked again, so a
//! session opened to an allowed port cannot be reused to reach a forbidden one).

use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::key::Protocol;
use super::time::Timestamp;
use crate::constants::{is_proxy_v4, is_proxy_v6};

/// What the caller installs for one proxy IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The real address, of the proxy IP's family; `None` while the domain has
    /// no address of that family (traffic gets ICMP unreachable).
    pub real: Option<IpAddr>,
    /// What the resource allows.
    pub filter: PortFilter,
    /// When the DNS answer behind `real` expires; a new session after this
    /// raises `NatEvent::RefreshExpired`.
    pub expires_at: Option<Timestamp>,
}

impl Mapping {
    /// A mapping to `real` that allows everything and never asks for a refresh.
    pub fn to(real: IpAddr) -> Mapping {
        Mapping {
            real: Some(real),
            filter: PortFilter::Any,
            expires_at: None,
        }
    }

    /// A registered proxy IP without a real address.
    pub fn unresolved() -> Mapping {
        Mapping {
            real: None,
            filter: PortFilter::Any,
            expires_at: None,
        }
    }
}

/// The protocols and ports a resource allows (the `ports` of gateway.yaml).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PortFilter {
    /// No `ports` configured: everything is allowed.
    #[default]
    Any,
    /// Only what a rule matches. An empty list allows nothing.
    Rules(Vec<PortRule>),
}

/// One allowed protocol with a destination port range (ignored for ICMP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub protocol: Protocol,
    pub ports: RangeInclusive<u16>,
}

impl PortFilter {
    /// Whether a packet of `protocol` to `dst_port` may pass.
    pub fn allows(&self, protocol: Protocol, dst_port: u16) -> bool {
        match self {
            PortFilter::Any => true,
            PortFilter::Rules(rules) => rules.iter().any(|r| {
                r.protocol == protocol
                    && (protocol == Protocol::Icmp || r.ports.contains(&dst_port))
            }),
        }
    }
}

impl std::str::FromStr for PortRule {
    type Err = PortRuleError;

    /// Parses the gateway.yaml form: `tcp/443`, `udp/5000-5999`, `tcp` (every
    /// port), `icmp`. Case-insensitive.
    fn from_str(s: &str) -> Result<PortRule, PortRuleError> {
        let (proto, ports) = match s.split_once('/') {
            Some((p, ports)) => (p, Some(ports)),
            None => (s, None),
        };
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            _ => return Err(PortRuleError::Protocol),
        };
        let ports = match (protocol, ports) {
            (Protocol::Icmp, Some(_)) => return Err(PortRuleError::IcmpPorts),
            (_, None) => 0..=u16::MAX,
            (_, Some(p)) => {
                let port = |x: &str| x.trim().parse::<u16>().map_err(|_| PortRuleError::Port);
                let (lo, hi) = match p.split_once('-') {
                    Some((lo, hi)) => (port(lo)?, port(hi)?),
                    None => (port(p)?, port(p)?),
                };
                if lo == 0 || lo > hi {
                    return Err(PortRuleError::Port);
                }
                lo..=hi
            }
        };
        Ok(PortRule { protocol, ports })
    }
}

/// Why a port rule did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PortRuleError {
    #[error("protocol must be tcp, udp or icmp")]
    Protocol,
    #[error("port must be 1-65535, or a range lo-hi with lo <= hi")]
    Port,
    #[error("icmp takes no ports")]
    IcmpPorts,
}

/// Why a mapping was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("proxy IP outside the proxy ranges")]
    NotAProxyIp,
    #[error("real address of another family than the proxy IP (no NAT64)")]
    FamilyMismatch,
}

/// Checks a mapping before it is installed.
pub(crate) fn validate(proxy: IpAddr, mapping: &Mapping) -> Result<(), MappingError> {
    let in_range = match proxy {
        IpAddr::V4(a) => is_proxy_v4(a),
        IpAddr::V6(a) => is_proxy_v6(a),
    };
    if !in_range {
        return Err(MappingError::NotAProxyIp);
    }
    if let Some(real) = mapping.real
        && real.is_ipv4() != proxy.is_ipv4()
    {
        return Err(MappingError::FamilyMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_rules() {
        let f = PortFilter::Rules(vec![
            PortRule {
                protocol: Protocol::Tcp,
                ports: 80..=80,
            },
            PortRule {
                protocol: Protocol::Udp,
                ports: 5000..=5999,
            },
        ]);
        assert!(f.allows(Protocol::Tcp, 80));
        assert!(!f.allows(Protocol::Tcp, 443));
        assert!(!f.allows(Protocol::Udp, 80));
        assert!(f.allows(Protocol::Udp, 5353));
        assert!(!f.allows(Protocol::Icmp, 0));
        assert!(PortFilter::Any.allows(Protocol::Icmp, 0));
        assert!(!PortFilter::Rules(vec![]).allows(Protocol::Tcp, 1));
    }

    #[test]
    fn rules_parse_from_config_strings() {
        let r: PortRule = "tcp/443".parse().unwrap();
        assert_eq!((r.protocol, r.ports), (Protocol::Tcp, 443..=443));
        let r: PortRule = "UDP/5000-5999".parse().unwrap();
        assert_eq!((r.protocol, r.ports), (Protocol::Udp, 5000..=5999));
        let r: PortRule = "tcp".parse().unwrap();
        assert_eq!(r.ports, 0..=u16::MAX);
        assert_eq!("icmp".parse::<PortRule>().unwrap().protocol, Protocol::Icmp);
        for bad in [
            "sctp/1",
            "tcp/0",
            "tcp/70000",
            "tcp/9-8",
            "tcp/x",
            "icmp/1",
            "",
        ] {
            assert!(bad.parse::<PortRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn validation() {
        let p4: IpAddr = "100.96.0.5".parse().unwrap();
        let p6: IpAddr = "fd00:2021:1111:8000::5".parse().unwrap();
        let r4: IpAddr = "198.18.0.10".parse().unwrap();
        assert_eq!(validate(p4, &Mapping::to(r4)), Ok(()));
        assert_eq!(
            validate(p6, &Mapping::to(r4)),
            Err(MappingError::FamilyMismatch)
        );
        assert_eq!(validate(p6, &Mapping::unresolved()), Ok(()));
        assert_eq!(
            validate(r4, &Mapping::to(r4)),
            Err(MappingError::NotAProxyIp)
        );
    }
}
