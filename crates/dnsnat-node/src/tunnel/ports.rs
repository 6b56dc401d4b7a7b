//! The `ports` of a resource (gateway.yaml): `tcp/443`, `udp/5000-5999`, `icmp`.

use dnsnat_core::nat::{PortRule, Protocol};

/// Parses one rule; the error says what was expected.
pub fn parse_rule(text: &str) -> Result<PortRule, String> {
    let lower = text.trim().to_ascii_lowercase();
    if lower == "icmp" {
        return Ok(PortRule {
            protocol: Protocol::Icmp,
            ports: 0..=u16::MAX,
        });
    }
    let bad = || format!("'{text}': expected tcp/PORT, udp/PORT, tcp/FROM-TO, udp/FROM-TO or icmp");
    let (proto, range) = lower.split_once('/').ok_or_else(bad)?;
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return Err(bad()),
    };
    let port = |s: &str| s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
    let ports = match range.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(bad());
            }
            a..=b
        }
        None => {
            let p = port(range)?;
            p..=p
        }
    };
    Ok(PortRule { protocol, ports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_shapes() {
        let r = parse_rule("tcp/443").unwrap();
        assert_eq!((r.protocol, r.ports), (Protocol::Tcp, 443..=443));
        let r = parse_rule("UDP/5000-5999").unwrap();
        assert_eq!((r.protocol, r.ports), (Protocol::Udp, 5000..=5999));
        assert_eq!(parse_rule("icmp").unwrap().protocol, Protocol::Icmp);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in [
            "tcp",
            "tcp/",
            "tcp/0",
            "tcp/70000",
            "sctp/80",
            "udp/9-1",
            "tcp/a-b",
            "",
        ] {
            let e = parse_rule(bad).unwrap_err();
            assert!(e.contains("expected tcp/PORT"), "{bad}: {e}");
        }
    }
}
