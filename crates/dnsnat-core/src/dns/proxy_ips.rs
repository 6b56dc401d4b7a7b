//! Proxy IP allocation (DESIGN.md §1 "proxy IP", §3.1).
//!
//! Every domain gets 4 IPv4 addresses from `100.96.0.0/11` and 4 IPv6 addresses
//! from `fd00:2021:1111:8000::/107` on its first A or AAAA query, whatever the
//! resources' IP stacks (so a resource changing stack never renumbers). Addresses
//! are handed out sequentially and never reused; the sentinel's IPv4 /24 is
//! skipped, as are the IPv4 network and broadcast addresses and the IPv6
//! subnet-router anycast address (host part zero).
//!
//! The table is exported for the client's state file and seeded back on start,
//! together with the allocation cursors, so a restart neither renumbers a domain
//! nor hands out an address that an earlier run gave to another domain.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::constants::{
    PROXY_IPS_PER_FAMILY, PROXY_V4_NET, PROXY_V4_PREFIX, PROXY_V6_NET, PROXY_V6_PREFIX,
    SENTINEL_V4, is_proxy_v4, is_proxy_v6, is_sentinel_v4_net,
};

use super::IpStack;

const V4_HOSTS: u32 = 1 << (32 - PROXY_V4_PREFIX);
const V6_HOSTS: u32 = 1 << (128 - PROXY_V6_PREFIX);
/// First host offset handed out in either family (offset 0 is the network address).
const FIRST_OFFSET: u32 = 1;
/// One past the last usable IPv4 offset (the broadcast address is skipped).
const V4_END: u32 = V4_HOSTS - 1;
/// One past the last usable IPv6 offset.
const V6_END: u32 = V6_HOSTS;

/// How many domains fit in a fresh table: the IPv4 range is the limit.
pub const DOMAIN_CAPACITY: u32 = (V4_END - FIRST_OFFSET - 256) / PROXY_IPS_PER_FAMILY as u32;

fn sentinel_v4_offset() -> u32 {
    (u32::from(SENTINEL_V4) & !0xff) - u32::from(PROXY_V4_NET)
}

fn v4_at(offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(PROXY_V4_NET) + offset)
}

fn v6_at(offset: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(PROXY_V6_NET) + u128::from(offset))
}

fn v4_offset(addr: Ipv4Addr) -> Option<u32> {
    is_proxy_v4(addr).then(|| u32::from(addr) - u32::from(PROXY_V4_NET))
}

fn v6_offset(addr: Ipv6Addr) -> Option<u32> {
    is_proxy_v6(addr).then(|| (u128::from(addr) - u128::from(PROXY_V6_NET)) as u32)
}

fn v4_usable(offset: u32) -> bool {
    (FIRST_OFFSET..V4_END).contains(&offset) && !is_sentinel_v4_net(v4_at(offset))
}

fn v6_usable(offset: u32) -> bool {
    (FIRST_OFFSET..V6_END).contains(&offset)
}

/// The 4 + 4 proxy IPs of one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyIps {
    pub v4: [Ipv4Addr; PROXY_IPS_PER_FAMILY],
    pub v6: [Ipv6Addr; PROXY_IPS_PER_FAMILY],
}

impl ProxyIps {
    /// The addresses a resource of this stack uses: 4 or 8, IPv4 first.
    pub fn for_stack(&self, stack: IpStack) -> Vec<IpAddr> {
        let mut out = Vec::with_capacity(2 * PROXY_IPS_PER_FAMILY);
        if stack.has_v4() {
            out.extend(self.v4.iter().copied().map(IpAddr::V4));
        }
        if stack.has_v6() {
            out.extend(self.v6.iter().copied().map(IpAddr::V6));
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.v4
            .iter()
            .copied()
            .map(IpAddr::V4)
            .chain(self.v6.iter().copied().map(IpAddr::V6))
    }
}

/// The proxy IP ranges are used up. The client must reset its state file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "proxy IP range exhausted: {domains} domains hold all {family} proxy addresses; \
     no address is ever reused, so reset the client's state file to start over"
)]
pub struct ProxyIpsExhausted {
    pub family: &'static str,
    pub domains: usize,
}

/// One row of the persisted table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyIpEntry {
    /// Lower case, no trailing dot.
    pub domain: String,
    pub ips: ProxyIps,
}

/// The persisted form of the allocator: what the client writes to its state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyIpTable {
    /// The next IPv4 address to hand out (may be the broadcast address once exhausted).
    pub next_v4: Ipv4Addr,
    /// The next IPv6 address to hand out (one past the range once exhausted).
    pub next_v6: Ipv6Addr,
    /// In allocation order.
    pub entries: Vec<ProxyIpEntry>,
}

/// Why a seeded entry was left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedRejection {
    #[error("entry `{domain}`: not a plain host name")]
    BadDomain { domain: String },
    #[error("entry `{domain}`: domain appears more than once")]
    DuplicateDomain { domain: String },
    #[error("entry `{domain}`: {ip} is not a usable proxy IP")]
    OutOfRange { domain: String, ip: IpAddr },
    #[error("entry `{domain}`: {ip} is already assigned to another domain or listed twice")]
    DuplicateIp { domain: String, ip: IpAddr },
}

/// Sequential, never-reusing allocator of proxy IPs, with the reverse map for PTR.
#[derive(Debug, Clone)]
pub struct ProxyIpAllocator {
    next_v4: u32,
    next_v6: u32,
    by_domain: HashMap<Arc<str>, ProxyIps>,
    by_ip: HashMap<IpAddr, Arc<str>>,
    order: Vec<Arc<str>>,
}

impl Default for ProxyIpAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyIpAllocator {
    pub fn new() -> Self {
        Self {
            next_v4: FIRST_OFFSET,
            next_v6: FIRST_OFFSET,
            by_domain: HashMap::new(),
            by_ip: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Number of domains with proxy IPs.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The proxy IPs of `domain` (lower case, no trailing dot), if it has any.
    pub fn get(&self, domain: &str) -> Option<&ProxyIps> {
        self.by_domain.get(domain)
    }

    /// The domain a proxy IP was given to.
    pub fn domain_of(&self, ip: IpAddr) -> Option<&str> {
        self.by_ip.get(&ip).map(|d| &**d)
    }

    /// The proxy IPs of `domain`, allocating them on first use. The returned flag
    /// says whether this call allocated (so the caller knows to persist).
    /// Either all 8 addresses are allocated or none.
    pub fn get_or_allocate(&mut self, domain: &str) -> Result<(ProxyIps, bool), ProxyIpsExhausted> {
        if let Some(ips) = self.by_domain.get(domain) {
            return Ok((*ips, false));
        }
        let mut v4 = [Ipv4Addr::UNSPECIFIED; PROXY_IPS_PER_FAMILY];
        let mut c4 = self.next_v4;
        for slot in &mut v4 {
            while c4 < V4_END && !v4_usable(c4) {
                // Only the sentinel /24 is unusable inside the range: jump over it.
                c4 = sentinel_v4_offset() + 256;
            }
            if c4 >= V4_END {
                return Err(ProxyIpsExhausted {
                    family: "IPv4",
                    domains: self.len(),
                });
            }
            *slot = v4_at(c4);
            c4 += 1;
        }
        let mut v6 = [Ipv6Addr::UNSPECIFIED; PROXY_IPS_PER_FAMILY];
        let mut c6 = self.next_v6;
        for slot in &mut v6 {
            if c6 >= V6_END {
                return Err(ProxyIpsExhausted {
                    family: "IPv6",
                    domains: self.len(),
                });
            }
            *slot = v6_at(c6);
            c6 += 1;
        }
        self.next_v4 = c4;
        self.next_v6 = c6;
        let ips = ProxyIps { v4, v6 };
        self.insert(Arc::from(domain), ips);
        Ok((ips, true))
    }

    fn insert(&mut self, domain: Arc<str>, ips: ProxyIps) {
        for ip in ips.iter() {
            self.by_ip.insert(ip, domain.clone());
        }
        self.by_domain.insert(domain.clone(), ips);
        self.order.push(domain);
    }

    /// The table to persist.
    pub fn export(&self) -> ProxyIpTable {
        ProxyIpTable {
            next_v4: v4_at(self.next_v4),
            next_v6: v6_at(self.next_v6),
            entries: self
                .order
                .iter()
                .map(|d| ProxyIpEntry {
                    domain: d.to_string(),
                    ips: self.by_domain[d],
                })
                .collect(),
        }
    }

    /// Rebuilds an allocator from a persisted table. Invalid or conflicting entries
    /// are left out and reported (the first of two conflicting entries wins), so one
    /// damaged row never stops the client. The cursors never move backwards: they
    /// end up past every seeded address and at least at the persisted cursors.
    pub fn seed(table: &ProxyIpTable) -> (Self, Vec<SeedRejection>) {
        let mut this = Self::new();
        let mut rejected = Vec::new();
        let mut max_v4 = 0;
        let mut max_v6 = 0;
        for entry in &table.entries {
            let domain = entry
                .domain
                .strip_suffix('.')
                .unwrap_or(&entry.domain)
                .to_ascii_lowercase();
            if !crate::pattern::is_hostname(&domain) {
                rejected.push(SeedRejection::BadDomain {
                    domain: entry.domain.clone(),
                });
                continue;
            }
            if this.by_domain.contains_key(domain.as_str()) {
                rejected.push(SeedRejection::DuplicateDomain { domain });
                continue;
            }
            match check_entry(&this, &domain, &entry.ips) {
                Err(r) => rejected.push(r),
                Ok((m4, m6)) => {
                    max_v4 = max_v4.max(m4);
                    max_v6 = max_v6.max(m6);
                    this.insert(Arc::from(domain.as_str()), entry.ips);
                }
            }
        }
        // A cursor is honoured only inside the range (or exactly at its end).
        let cursor_v4 = v4_offset(table.next_v4)
            .filter(|o| *o >= FIRST_OFFSET)
            .unwrap_or(FIRST_OFFSET);
        let cursor_v6 = match u128::from(table.next_v6).checked_sub(u128::from(PROXY_V6_NET)) {
            Some(o) if (u128::from(FIRST_OFFSET)..=u128::from(V6_END)).contains(&o) => o as u32,
            _ => FIRST_OFFSET,
        };
        this.next_v4 = cursor_v4.max(max_v4 + 1).min(V4_END);
        this.next_v6 = cursor_v6.max(max_v6 + 1).min(V6_END);
        (this, rejected)
    }
}

/// Validates one seeded entry against the range rules and the entries already
/// accepted; returns the highest offsets it uses.
fn check_entry(
    this: &ProxyIpAllocator,
    domain: &str,
    ips: &ProxyIps,
) -> Result<(u32, u32), SeedRejection> {
    let mut seen = Vec::with_capacity(2 * PROXY_IPS_PER_FAMILY);
    let mut max_v4 = 0;
    let mut max_v6 = 0;
    for ip in ips.iter() {
        let usable = match ip {
            IpAddr::V4(a) => v4_offset(a).filter(|o| v4_usable(*o)).inspect(|o| {
                max_v4 = max_v4.max(*o);
            }),
            IpAddr::V6(a) => v6_offset(a).filter(|o| v6_usable(*o)).inspect(|o| {
                max_v6 = max_v6.max(*o);
            }),
        };
        if usable.is_none() {
            return Err(SeedRejection::OutOfRange {
                domain: domain.to_owned(),
                ip,
            });
        }
        if seen.contains(&ip) || this.by_ip.contains_key(&ip) {
            return Err(SeedRejection::DuplicateIp {
                domain: domain.to_owned(),
                ip,
            });
        }
        seen.push(ip);
    }
    Ok((max_v4, max_v6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn first_domains_get_sequential_addresses() {
        let mut a = ProxyIpAllocator::new();
        let (first, new) = a.get_or_allocate("app.corp.example").unwrap();
        assert!(new);
        assert_eq!(
            first.v4,
            [
                Ipv4Addr::new(100, 96, 0, 1),
                Ipv4Addr::new(100, 96, 0, 2),
                Ipv4Addr::new(100, 96, 0, 3),
                Ipv4Addr::new(100, 96, 0, 4)
            ]
        );
        assert_eq!(
            first.v6[0],
            "fd00:2021:1111:8000::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            first.v6[3],
            "fd00:2021:1111:8000::4".parse::<Ipv6Addr>().unwrap()
        );
        let (second, _) = a.get_or_allocate("db.corp.example").unwrap();
        assert_eq!(second.v4[0], Ipv4Addr::new(100, 96, 0, 5));
        assert_eq!(
            second.v6[0],
            "fd00:2021:1111:8000::5".parse::<Ipv6Addr>().unwrap()
        );
        // Asking again returns the same addresses and allocates nothing.
        assert_eq!(
            a.get_or_allocate("app.corp.example").unwrap(),
            (first, false)
        );
        assert_eq!(a.len(), 2);
        assert_eq!(
            a.domain_of(IpAddr::V4(Ipv4Addr::new(100, 96, 0, 6))),
            Some("db.corp.example")
        );
        assert_eq!(a.domain_of(IpAddr::V4(Ipv4Addr::new(100, 96, 0, 9))), None);
    }

    #[test]
    fn for_stack_filters_families() {
        let mut a = ProxyIpAllocator::new();
        let (ips, _) = a.get_or_allocate("x.example").unwrap();
        assert_eq!(ips.for_stack(IpStack::Dual).len(), 8);
        assert!(ips.for_stack(IpStack::Ipv4).iter().all(IpAddr::is_ipv4));
        assert_eq!(ips.for_stack(IpStack::Ipv4).len(), 4);
        assert!(ips.for_stack(IpStack::Ipv6).iter().all(IpAddr::is_ipv6));
        assert_eq!(ips.for_stack(IpStack::Ipv6).len(), 4);
    }

    fn table_with_cursor(next_v4: Ipv4Addr) -> ProxyIpTable {
        ProxyIpTable {
            next_v4,
            next_v6: v6_at(FIRST_OFFSET),
            entries: vec![],
        }
    }

    #[test]
    fn sentinel_slash_24_is_skipped() {
        let (mut a, rejected) =
            ProxyIpAllocator::seed(&table_with_cursor(Ipv4Addr::new(100, 100, 110, 254)));
        assert!(rejected.is_empty());
        let (ips, _) = a.get_or_allocate("a.example").unwrap();
        assert_eq!(
            ips.v4,
            [
                Ipv4Addr::new(100, 100, 110, 254),
                Ipv4Addr::new(100, 100, 110, 255),
                Ipv4Addr::new(100, 100, 112, 0),
                Ipv4Addr::new(100, 100, 112, 1)
            ]
        );
        // A cursor pointing into the sentinel /24 also jumps over it.
        let (mut a, _) =
            ProxyIpAllocator::seed(&table_with_cursor(Ipv4Addr::new(100, 100, 111, 7)));
        let (ips, _) = a.get_or_allocate("a.example").unwrap();
        assert_eq!(ips.v4[0], Ipv4Addr::new(100, 100, 112, 0));
    }

    #[test]
    fn exhaustion_is_a_clear_error_and_allocates_nothing() {
        let (mut a, _) =
            ProxyIpAllocator::seed(&table_with_cursor(Ipv4Addr::new(100, 127, 255, 250)));
        let (ips, _) = a.get_or_allocate("last.example").unwrap();
        assert_eq!(ips.v4[3], Ipv4Addr::new(100, 127, 255, 253));
        // Only .254 is left (.255 is broadcast): not enough for 4.
        let err = a.get_or_allocate("one-too-many.example").unwrap_err();
        assert_eq!(err.family, "IPv4");
        assert!(err.to_string().contains("reset the client's state file"));
        assert!(a.get("one-too-many.example").is_none());
        assert_eq!(a.len(), 1);
        // Known domains keep working.
        assert!(a.get_or_allocate("last.example").is_ok());

        let mut t = table_with_cursor(v4_at(FIRST_OFFSET));
        t.next_v6 = v6_at(V6_END - 3);
        let (mut a, _) = ProxyIpAllocator::seed(&t);
        assert_eq!(a.get_or_allocate("x.example").unwrap_err().family, "IPv6");
        assert!(a.is_empty());
        // The failed attempt did not consume IPv4 addresses either.
        assert_eq!(a.export().next_v4, v4_at(FIRST_OFFSET));
    }

    #[test]
    fn capacity_is_half_a_million_domains() {
        assert_eq!(DOMAIN_CAPACITY, 524_223);
    }

    #[test]
    fn export_and_seed_round_trip_without_renumbering() {
        let mut a = ProxyIpAllocator::new();
        for i in 0..100 {
            a.get_or_allocate(&format!("host{i}.example")).unwrap();
        }
        let table = a.export();
        assert_eq!(table.entries.len(), 100);
        assert_eq!(table.entries[0].domain, "host0.example");
        let (mut b, rejected) = ProxyIpAllocator::seed(&table);
        assert!(rejected.is_empty());
        assert_eq!(b.export(), table);
        for i in 0..100 {
            let d = format!("host{i}.example");
            assert_eq!(b.get_or_allocate(&d).unwrap(), (*a.get(&d).unwrap(), false));
        }
        // New domains continue after the seeded ones.
        let (fresh, _) = b.get_or_allocate("new.example").unwrap();
        let (expected, _) = a.get_or_allocate("new.example").unwrap();
        assert_eq!(fresh, expected);
    }

    #[test]
    fn seed_never_moves_cursors_backwards() {
        // Entries were removed from the file, but their addresses were handed out once.
        let mut a = ProxyIpAllocator::new();
        for i in 0..10 {
            a.get_or_allocate(&format!("h{i}.example")).unwrap();
        }
        let mut table = a.export();
        table.entries.truncate(2);
        let (mut b, _) = ProxyIpAllocator::seed(&table);
        let (ips, _) = b.get_or_allocate("new.example").unwrap();
        assert_eq!(ips.v4[0], Ipv4Addr::new(100, 96, 0, 41));

        // A lost cursor is recovered from the highest seeded address.
        table.next_v4 = Ipv4Addr::new(1, 2, 3, 4);
        table.next_v6 = Ipv6Addr::LOCALHOST;
        let (mut c, _) = ProxyIpAllocator::seed(&table);
        let (ips, _) = c.get_or_allocate("new.example").unwrap();
        assert_eq!(ips.v4[0], Ipv4Addr::new(100, 96, 0, 9));
        assert_eq!(ips.v6[0], v6_at(9));
    }

    #[test]
    fn seed_rejects_bad_entries_and_keeps_the_rest() {
        let mut a = ProxyIpAllocator::new();
        a.get_or_allocate("good.example").unwrap();
        a.get_or_allocate("other.example").unwrap();
        let mut table = a.export();
        let good = table.entries[0].clone();
        let mut out_of_range = good.clone();
        out_of_range.domain = "oor.example".into();
        out_of_range.ips.v4[0] = Ipv4Addr::new(10, 0, 0, 1);
        let mut sentinel = good.clone();
        sentinel.domain = "sentinel.example".into();
        sentinel.ips.v4 = [
            Ipv4Addr::new(100, 100, 111, 1),
            Ipv4Addr::new(100, 100, 111, 2),
            Ipv4Addr::new(100, 100, 111, 3),
            Ipv4Addr::new(100, 100, 111, 4),
        ];
        let mut stolen = good.clone();
        stolen.domain = "thief.example".into();
        let mut dup = good.clone();
        dup.domain = "GOOD.example.".into();
        let mut empty = good.clone();
        empty.domain = "".into();
        let mut spaced = good.clone();
        spaced.domain = "a b.example".into();
        table
            .entries
            .extend([out_of_range, sentinel, stolen, dup, empty, spaced]);
        let (b, rejected) = ProxyIpAllocator::seed(&table);
        assert_eq!(b.len(), 2);
        assert_eq!(rejected.len(), 6, "{rejected:?}");
        assert!(matches!(rejected[0], SeedRejection::OutOfRange { .. }));
        assert!(matches!(rejected[1], SeedRejection::OutOfRange { .. }));
        assert!(matches!(rejected[2], SeedRejection::DuplicateIp { .. }));
        assert!(matches!(rejected[3], SeedRejection::DuplicateDomain { .. }));
        assert!(matches!(rejected[4], SeedRejection::BadDomain { .. }));
        assert!(matches!(rejected[5], SeedRejection::BadDomain { .. }));
    }

    #[test]
    fn addresses_are_unique_in_range_and_skip_the_sentinel_across_the_boundary() {
        let (mut a, _) =
            ProxyIpAllocator::seed(&table_with_cursor(Ipv4Addr::new(100, 100, 110, 0)));
        let mut seen = HashSet::new();
        for i in 0..200 {
            let (ips, _) = a.get_or_allocate(&format!("d{i}.example")).unwrap();
            for ip in ips.iter() {
                assert!(seen.insert(ip), "{ip} handed out twice");
                match ip {
                    IpAddr::V4(v4) => {
                        assert!(is_proxy_v4(v4));
                        assert!(!is_sentinel_v4_net(v4));
                    }
                    IpAddr::V6(v6) => assert!(is_proxy_v6(v6)),
                }
            }
        }
    }
}
