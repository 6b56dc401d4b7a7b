//! Proxy IP allocation (docs/architecture.md#address-plan).
//!
//! Every domain gets 4 IPv4 addresses from `100.96.0.0/11` and 4 IPv6 addresses
//! from `fd00:2021:1111:8000::/107` on its first A or AAAA query, whatever the
//! resources' IP stacks (so a resource changing stack never renumbers). Addresses
//! are handed out sequentially; the sentinel's IPv4 /24 is skipped, as are the
//! IPv4 network and broadcast addresses and the IPv6 subnet-router anycast
//! address (host part zero).
//!
//! Names age, so a flood of made-up names never locks the user out: a domain
//! keeps its addresses while it is used (queried, or carrying traffic), and
//! gives them up when it has been idle for the runtime's idle time, or when
//! `max_domains` hold addresses and a new one needs some (the least recently
//! used goes). Given-up sets are handed out again only once the fresh range is
//! used up, oldest first, so an address an application may still have cached
//! is reused as late as possible; none is reused within `QUARANTINE_MS` of its
//! release unless nothing else is left.
//!
//! The table is exported for the client's state file (with each domain's idle
//! time) and seeded back on start, together with the allocation cursors, so a
//! restart neither renumbers a domain nor forgets how long it was idle.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::recency::Recency;

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
/// Domains holding proxy IPs at most, by default. Past it, the least recently
/// used one gives its addresses up for the new one.
pub const DEFAULT_MAX_DOMAINS: usize = 16_384;
/// A released set is not handed out again for this long, unless nothing else
/// is left: longer than applications keep a DNS answer they were told to keep
/// for 1 s.
pub const QUARANTINE_MS: i64 = 10 * 60 * 1000;

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

/// The proxy IP ranges are used up: only possible with a `max_domains` close
/// to [`DOMAIN_CAPACITY`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "proxy IP range exhausted: {domains} domains hold all {family} proxy addresses; \
     lower the client's name limit, or reset its state file to start over"
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
    /// How long it had not been used when the table was exported.
    pub idle_ms: u64,
}

/// A domain that gave its proxy IPs up (idle, or the least recently used when
/// a new domain needed a set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
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
    /// Least recently used first.
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

/// Allocator of proxy IPs, with the reverse map for PTR and the recency of
/// every domain.
#[derive(Debug, Clone)]
pub struct ProxyIpAllocator {
    next_v4: u32,
    next_v6: u32,
    by_domain: HashMap<Arc<str>, ProxyIps>,
    by_ip: HashMap<IpAddr, Arc<str>>,
    recency: Recency,
    /// Sets given up, with when, oldest first.
    released: VecDeque<(i64, ProxyIps)>,
    /// Domains released since the runtime last took them.
    newly_released: Vec<Released>,
    max_domains: usize,
    /// The runtime's clock, milliseconds.
    now: i64,
    stats: AllocatorStats,
}

/// Counters, monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Domains that gave their set up because a new domain needed one.
    pub evicted: u64,
    /// Domains that gave their set up after being idle.
    pub expired: u64,
    /// Released sets handed out again.
    pub reused: u64,
    /// ... of which within `QUARANTINE_MS` of their release (nothing else was left).
    pub reused_early: u64,
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
            recency: Recency::default(),
            released: VecDeque::new(),
            newly_released: Vec::new(),
            max_domains: DEFAULT_MAX_DOMAINS,
            now: 0,
            stats: AllocatorStats::default(),
        }
    }

    /// Domains holding proxy IPs at most: at least 1, and at most half the
    /// range, so the fresh range never has to be searched for a free set.
    pub fn set_max_domains(&mut self, max: usize) {
        self.max_domains = max.clamp(1, DOMAIN_CAPACITY as usize / 2);
    }

    /// The runtime's clock (milliseconds) for the next calls.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now = now_ms;
    }

    pub fn stats(&self) -> AllocatorStats {
        self.stats
    }

    /// Number of domains with proxy IPs.
    pub fn len(&self) -> usize {
        self.by_domain.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// Records a use of `domain` now (a query, or traffic to its proxy IPs).
    pub fn touch(&mut self, domain: &str) {
        if let Some((key, _)) = self.by_domain.get_key_value(domain) {
            let key = key.clone();
            self.recency.touch(&key, self.now);
        }
    }

    /// Records traffic to `ip`: a use of its domain.
    pub fn touch_ip(&mut self, ip: IpAddr) {
        if let Some(key) = self.by_ip.get(&ip).cloned() {
            self.recency.touch(&key, self.now);
        }
    }

    /// Releases every domain not used for `idle_ms`; they come out of
    /// [`ProxyIpAllocator::take_released`]. Costs the domains released.
    pub fn release_idle(&mut self, idle_ms: u64) {
        let before = self
            .now
            .saturating_sub(i64::try_from(idle_ms).unwrap_or(i64::MAX));
        while let Some(domain) = self.recency.oldest_before(before).cloned() {
            self.release(&domain);
            self.stats.expired += 1;
        }
    }

    /// The domains released since the last call.
    pub fn take_released(&mut self) -> Vec<Released> {
        std::mem::take(&mut self.newly_released)
    }

    fn release(&mut self, domain: &Arc<str>) {
        self.recency.remove(domain);
        let Some(ips) = self.by_domain.remove(domain) else {
            return;
        };
        for ip in ips.iter() {
            self.by_ip.remove(&ip);
        }
        self.released.push_back((self.now, ips));
        self.newly_released.push(Released {
            domain: domain.to_string(),
            ips,
        });
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
    ///
    /// A new domain past `max_domains` takes the place of the least recently
    /// used one. Addresses come from the fresh range while it lasts, then from
    /// released sets, oldest first; once both are used up, the fresh range
    /// starts over, skipping addresses in use (after a restart, released sets
    /// are known only as addresses nobody holds).
    pub fn get_or_allocate(&mut self, domain: &str) -> Result<(ProxyIps, bool), ProxyIpsExhausted> {
        if let Some((key, ips)) = self.by_domain.get_key_value(domain) {
            let (key, ips) = (key.clone(), *ips);
            self.recency.touch(&key, self.now);
            return Ok((ips, false));
        }
        if self.by_domain.len() >= self.max_domains
            && let Some(oldest) = self.recency.oldest().cloned()
        {
            self.release(&oldest);
            self.stats.evicted += 1;
        }
        let ips = match self.take_fresh() {
            Ok(ips) => ips,
            Err(exhausted) => match self.take_released_set() {
                Some(ips) => ips,
                None if self.next_v4 > FIRST_OFFSET || self.next_v6 > FIRST_OFFSET => {
                    self.next_v4 = FIRST_OFFSET;
                    self.next_v6 = FIRST_OFFSET;
                    self.take_fresh()?
                }
                None => return Err(exhausted),
            },
        };
        self.insert(Arc::from(domain), ips);
        Ok((ips, true))
    }

    /// The next free addresses of the fresh range (skipping any in use), or
    /// nothing consumed.
    fn take_fresh(&mut self) -> Result<ProxyIps, ProxyIpsExhausted> {
        let mut v4 = [Ipv4Addr::UNSPECIFIED; PROXY_IPS_PER_FAMILY];
        let mut c4 = self.next_v4;
        for slot in &mut v4 {
            loop {
                while c4 < V4_END && !v4_usable(c4) {
                    // Only the sentinel /24 is unusable inside the range: jump over it.
                    c4 = sentinel_v4_offset() + 256;
                }
                if c4 >= V4_END || !self.by_ip.contains_key(&IpAddr::V4(v4_at(c4))) {
                    break;
                }
                c4 += 1;
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
            while c6 < V6_END && self.by_ip.contains_key(&IpAddr::V6(v6_at(c6))) {
                c6 += 1;
            }
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
        Ok(ProxyIps { v4, v6 })
    }

    /// The oldest released set still free (a restart may have given its
    /// addresses to others since).
    fn take_released_set(&mut self) -> Option<ProxyIps> {
        while let Some((at, ips)) = self.released.pop_front() {
            if ips.iter().any(|ip| self.by_ip.contains_key(&ip)) {
                continue;
            }
            self.stats.reused += 1;
            if self.now - at < QUARANTINE_MS {
                self.stats.reused_early += 1;
            }
            return Some(ips);
        }
        None
    }

    fn insert(&mut self, domain: Arc<str>, ips: ProxyIps) {
        for ip in ips.iter() {
            self.by_ip.insert(ip, domain.clone());
        }
        self.by_domain.insert(domain.clone(), ips);
        self.recency.touch(&domain, self.now);
    }

    /// The table to persist, least recently used first.
    pub fn export(&self) -> ProxyIpTable {
        ProxyIpTable {
            next_v4: v4_at(self.next_v4),
            next_v6: v6_at(self.next_v6),
            entries: self
                .recency
                .iter()
                .filter_map(|(at, d)| {
                    self.by_domain.get(d).map(|ips| ProxyIpEntry {
                        domain: d.to_string(),
                        ips: *ips,
                        idle_ms: u64::try_from(self.now.saturating_sub(at)).unwrap_or(0),
                    })
                })
                .collect(),
        }
    }

    /// Rebuilds an allocator from a persisted table. Invalid or conflicting entries
    /// are left out and reported (the first of two conflicting entries wins), so one
    /// damaged row never stops the client. The cursors never move backwards: they
    /// end up past every seeded address and at least at the persisted cursors.
    /// Each domain's last use is its idle time before now (the clock starts at 0).
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
                    let idle = i64::try_from(entry.idle_ms).unwrap_or(i64::MAX);
                    this.recency.remove(&domain);
                    let key = this
                        .by_domain
                        .get_key_value(domain.as_str())
                        .map(|(k, _)| k.clone());
                    if let Some(key) = key {
                        this.recency.touch(&key, -idle);
                    }
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
    fn released_sets_are_reused_only_once_the_fresh_range_is_used_up_oldest_first() {
        // Room for two fresh sets.
        let (mut a, _) =
            ProxyIpAllocator::seed(&table_with_cursor(Ipv4Addr::new(100, 127, 255, 246)));
        a.set_max_domains(2);
        a.set_now(0);
        let (first, _) = a.get_or_allocate("one.example").unwrap();
        a.set_now(10);
        let (second, _) = a.get_or_allocate("two.example").unwrap();
        // The fresh range is used up: the least recently used gives its set
        // up, and it is the one handed out (early: nothing else is left).
        a.set_now(20);
        let (third, new) = a.get_or_allocate("three.example").unwrap();
        assert!(new);
        assert_eq!(third, first);
        assert_eq!(a.take_released().len(), 1);
        assert_eq!(a.stats().reused, 1);
        assert_eq!(a.stats().reused_early, 1);
        // Past the quarantine, a reuse is not early.
        a.set_now(20 + QUARANTINE_MS);
        let (fourth, _) = a.get_or_allocate("four.example").unwrap();
        assert_eq!(fourth, second);
        assert_eq!(
            a.stats().reused_early,
            2,
            "two was released at 20 + quarantine"
        );
        a.set_now(40 + 2 * QUARANTINE_MS);
        a.release_idle(1);
        assert!(a.is_empty());
        a.set_now(40 + 3 * QUARANTINE_MS);
        let (fifth, _) = a.get_or_allocate("five.example").unwrap();
        assert_eq!(fifth, first, "the oldest release first");
        assert_eq!(a.stats().reused_early, 2);
    }

    #[test]
    fn a_restart_that_lost_released_sets_finds_free_addresses_from_the_start() {
        let mut a = ProxyIpAllocator::new();
        a.get_or_allocate("keep.example").unwrap();
        a.get_or_allocate("gone.example").unwrap();
        let mut table = a.export();
        table.entries.retain(|e| e.domain == "keep.example");
        table.next_v4 = v4_at(V4_END);
        table.next_v6 = v6_at(V6_END);
        let (mut b, _) = ProxyIpAllocator::seed(&table);
        let (ips, _) = b.get_or_allocate("new.example").unwrap();
        // keep.example holds offsets 1..=4; the next free are 5..=8.
        assert_eq!(ips.v4[0], v4_at(5));
        assert_eq!(ips.v6[0], v6_at(5));
    }

    #[test]
    fn idle_times_survive_export_and_seed() {
        let mut a = ProxyIpAllocator::new();
        a.set_now(1_000);
        a.get_or_allocate("old.example").unwrap();
        a.set_now(5_000);
        a.get_or_allocate("new.example").unwrap();
        a.set_now(6_000);
        let table = a.export();
        let idle: Vec<(&str, u64)> = table
            .entries
            .iter()
            .map(|e| (e.domain.as_str(), e.idle_ms))
            .collect();
        assert_eq!(idle, [("old.example", 5_000), ("new.example", 1_000)]);
        let (mut b, _) = ProxyIpAllocator::seed(&table);
        // The seeded clock starts at 0: old was last used at -5 s.
        b.set_now(0);
        b.release_idle(3_000);
        let released: Vec<String> = b.take_released().into_iter().map(|r| r.domain).collect();
        assert_eq!(released, ["old.example"]);
        assert!(b.get("new.example").is_some());
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
        // All used at the same instant: ordered by name.
        assert_eq!(table.entries[0].domain, "host0.example");
        assert_eq!(table.entries[1].domain, "host1.example");
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
