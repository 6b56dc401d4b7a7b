//! The proxy-IP table as JSON: what the client's state file holds between
//! runs. The file is untrusted on the way in (a crash, a bad disk, a bad
//! edit): every error names the field, and [`crate::dns::ProxyIpAllocator::seed`]
//! then leaves out rows that do not fit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Value, json};

use super::{ProxyIpEntry, ProxyIpTable, ProxyIps};

pub fn table_to_json(t: &ProxyIpTable) -> String {
    let entries: Vec<Value> = t
        .entries
        .iter()
        .map(|e| {
            json!({
                "domain": e.domain,
                "ipv4": e.ips.v4.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "ipv6": e.ips.v6.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "idleMs": e.idle_ms,
            })
        })
        .collect();
    json!({ "version": 1, "nextV4": t.next_v4.to_string(), "nextV6": t.next_v6.to_string(), "entries": entries })
        .to_string()
}

fn addrs<T: std::str::FromStr>(v: &Value, field: &str, at: &str) -> Result<[T; 4], String> {
    let list = v
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{at}.{field}: expected an array of 4 addresses"))?;
    let parsed: Vec<T> = list
        .iter()
        .map(|a| a.as_str().and_then(|s| s.parse().ok()))
        .collect::<Option<Vec<T>>>()
        .ok_or_else(|| format!("{at}.{field}: expected addresses"))?;
    parsed
        .try_into()
        .map_err(|_| format!("{at}.{field}: expected exactly 4 addresses"))
}

pub fn table_from_json(text: &str) -> Result<ProxyIpTable, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let ip = |field: &str| -> Result<IpAddr, String> {
        v.get(field)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{field}: expected an IP address"))
    };
    let (IpAddr::V4(next_v4), IpAddr::V6(next_v6)) = (ip("nextV4")?, ip("nextV6")?) else {
        return Err("nextV4/nextV6: expected an IPv4 and an IPv6 address".into());
    };
    let mut entries = Vec::new();
    for (i, e) in v
        .get("entries")
        .and_then(Value::as_array)
        .ok_or("entries: expected an array")?
        .iter()
        .enumerate()
    {
        let at = format!("entries[{i}]");
        let domain = e
            .get("domain")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{at}.domain: expected a string"))?;
        let v4: [Ipv4Addr; 4] = addrs(e, "ipv4", &at)?;
        let v6: [Ipv6Addr; 4] = addrs(e, "ipv6", &at)?;
        // Tables written before names aged have no idle time: as if just used.
        let idle_ms = match e.get("idleMs") {
            None => 0,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| format!("{at}.idleMs: expected a non-negative integer"))?,
        };
        entries.push(ProxyIpEntry {
            domain: domain.to_string(),
            ips: ProxyIps { v4, v6 },
            idle_ms,
        });
    }
    Ok(ProxyIpTable {
        next_v4,
        next_v6,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::ProxyIpAllocator;

    #[test]
    fn table_round_trips_through_json() {
        let mut a = ProxyIpAllocator::new();
        a.get_or_allocate("app.corp.example").unwrap();
        a.get_or_allocate("db.corp.example").unwrap();
        let t = a.export();
        assert_eq!(table_from_json(&table_to_json(&t)).unwrap(), t);
    }

    #[test]
    fn bad_tables_name_the_field() {
        assert!(table_from_json("nope").unwrap_err().contains("not JSON"));
        let e = table_from_json(r#"{"nextV4":"100.96.0.8","nextV6":"fd00:2021:1111:8000::8","entries":[{"domain":"a","ipv4":["1.2.3.4"],"ipv6":[]}]}"#)
            .unwrap_err();
        assert!(e.contains("entries[0].ipv4"), "{e}");
    }
}
