//! The gateway's DNS resolution (docs/architecture.md#the-gateways-policy: "Always accept, resolve in the
//! background"), exposed to JavaScript as `Resolver`.
//!
//! One call is one faithful lookup: A and AAAA asked concurrently through
//! hickory-resolver, under one overall deadline, with a bound on how many
//! resolutions run at once. Caching answers for their TTL and sharing one
//! resolution per domain are the TypeScript layer's job, so hickory's own
//! response cache is switched off and the TTL reported is the one the
//! nameserver sent.
//!
//! A resolution never throws: every way a lookup can end (including a
//! malformed domain and a full semaphore) is an `outcome` in the result.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::Semaphore;

/// Overall deadline of one resolution unless told otherwise (docs/architecture.md#the-gateways-policy).
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// Resolutions allowed at once unless told otherwise (docs/architecture.md#the-gateways-policy).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1_000;
/// Longest accepted deadline: an hour is already far beyond any useful DNS wait.
const MAX_TIMEOUT_MS: u32 = 3_600_000;
/// Largest accepted bound on concurrent resolutions.
const MAX_MAX_IN_FLIGHT: u32 = 1_000_000;
/// TTL reported for a negative answer (NXDOMAIN, no records) that carried no
/// SOA, so no negative TTL (RFC 2308 §5): short enough that a name that
/// appears is picked up soon, equal to the longest self-healing backoff step.
pub const DEFAULT_NEGATIVE_TTL: u32 = 30;
/// Cap on a negative TTL taken from an SOA: a gateway should notice a record
/// created after a miss within minutes, whatever the zone's SOA says.
pub const MAX_NEGATIVE_TTL: u32 = 300;
/// The per-attempt timeout hickory uses when nothing else says so.
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The message of a resolution refused because `maxInFlight` are running.
pub const BUSY: &str = "busy";

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, msg.into())
}

/// How to create a resolver.
#[napi(object)]
#[derive(Default)]
pub struct ResolverOptions {
    /// Nameservers as `ip` or `ip:port` (`[v6]:port`); default: the
    /// `nameserver` lines of the system's `/etc/resolv.conf`.
    pub nameservers: Option<Vec<String>>,
    /// Overall deadline of one resolution in milliseconds (default 10000).
    pub timeout_ms: Option<u32>,
    /// Resolutions allowed at once (default 1000); beyond that a resolution is
    /// refused at once with outcome `error` and error `busy`.
    pub max_in_flight: Option<u32>,
}

/// The result of one resolution. `ipv4`/`ipv6` are sorted numerically and
/// free of duplicates.
#[napi(object)]
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    #[napi(ts_type = "'ok' | 'nxdomain' | 'no-records' | 'timeout' | 'error'")]
    pub outcome: String,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    /// `ok`: the smallest TTL among the answer records (CNAMEs included);
    /// `nxdomain`/`no-records`: the negative TTL from the SOA (capped at 300),
    /// or 30 without an SOA; `timeout`/`error`: 0.
    pub ttl_seconds: u32,
    /// Why it failed; on `ok`, set when the other family timed out or failed.
    pub error: Option<String>,
    /// Milliseconds from the call to the answer.
    pub elapsed_ms: u32,
}

/// Counters since the resolver was created.
#[napi(object)]
pub struct ResolverStats {
    /// Resolutions running now.
    pub in_flight: u32,
    /// Resolutions started (refused ones not included).
    pub started: f64,
    /// Resolutions refused because `maxInFlight` were running.
    pub busy: f64,
    pub ok: f64,
    pub nxdomain: f64,
    pub no_records: f64,
    pub timeout: f64,
    pub error: f64,
}

/// How one family's (A or AAAA) lookup ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    /// Addresses of that family, and the smallest TTL of the answer records.
    Addresses { addrs: Vec<IpAddr>, ttl: u32 },
    /// NOERROR without records of that family.
    NoData { negative_ttl: Option<u32> },
    /// The name does not exist.
    NxDomain { negative_ttl: Option<u32> },
    /// No answer before the deadline (or hickory's attempts all timed out).
    Timeout,
    /// Anything else: SERVFAIL, REFUSED, I/O errors, malformed answers.
    Failed(String),
}

/// The outcome of a resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    NxDomain,
    NoRecords,
    Timeout,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NxDomain => "nxdomain",
            Outcome::NoRecords => "no-records",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

/// Both families combined: what a resolution reports, without timing.
#[derive(Clone, Debug, PartialEq)]
pub struct Combined {
    pub outcome: Outcome,
    pub ipv4: Vec<IpAddr>,
    pub ipv6: Vec<IpAddr>,
    pub ttl: u32,
    pub error: Option<String>,
}

impl Combined {
    fn failed(outcome: Outcome, error: impl Into<String>) -> Self {
        Combined {
            outcome,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            ttl: 0,
            error: Some(error.into()),
        }
    }
}

fn describe(label: &str, family: &Family) -> Option<String> {
    match family {
        Family::Addresses { .. } => None,
        Family::NoData { .. } => Some(format!("{label}: no records")),
        Family::NxDomain { .. } => Some(format!("{label}: NXDOMAIN")),
        Family::Timeout => Some(format!("{label}: timed out")),
        Family::Failed(msg) => Some(format!("{label}: {msg}")),
    }
}

fn negative_ttl(family: &Family) -> Option<u32> {
    match family {
        Family::NoData { negative_ttl } | Family::NxDomain { negative_ttl } => *negative_ttl,
        _ => None,
    }
}

/// Combines the A and AAAA lookups into one outcome.
///
/// Any addresses make it `ok` (a family without records, or one that failed,
/// does not spoil the other). Without addresses, NXDOMAIN from either family
/// wins (the name does not exist, whatever else happened); `no-records` needs
/// both families to have answered "no data"; then `timeout` if either timed
/// out; else `error`.
pub fn combine(v4: Family, v6: Family) -> Combined {
    let problems = || {
        let parts: Vec<String> = [describe("A", &v4), describe("AAAA", &v6)]
            .into_iter()
            .flatten()
            .collect();
        parts.join("; ")
    };
    let mut ipv4 = Vec::new();
    let mut ipv6 = Vec::new();
    let mut ttl: Option<u32> = None;
    for family in [&v4, &v6] {
        if let Family::Addresses { addrs, ttl: t } = family {
            for a in addrs {
                match a {
                    IpAddr::V4(_) => ipv4.push(*a),
                    IpAddr::V6(_) => ipv6.push(*a),
                }
            }
            ttl = Some(ttl.map_or(*t, |m| m.min(*t)));
        }
    }
    if let Some(ttl) = ttl {
        ipv4.sort_unstable();
        ipv4.dedup();
        ipv6.sort_unstable();
        ipv6.dedup();
        let failed = |f: &Family| matches!(f, Family::Timeout | Family::Failed(_));
        let error = (failed(&v4) || failed(&v6)).then(problems);
        return Combined {
            outcome: Outcome::Ok,
            ipv4,
            ipv6,
            ttl,
            error,
        };
    }
    let negative = || {
        [negative_ttl(&v4), negative_ttl(&v6)]
            .into_iter()
            .flatten()
            .min()
            .map_or(DEFAULT_NEGATIVE_TTL, |t| t.min(MAX_NEGATIVE_TTL))
    };
    let is_nx = |f: &Family| matches!(f, Family::NxDomain { .. });
    let is_nodata = |f: &Family| matches!(f, Family::NoData { .. });
    let (outcome, ttl) = if is_nx(&v4) || is_nx(&v6) {
        (Outcome::NxDomain, negative())
    } else if is_nodata(&v4) && is_nodata(&v6) {
        (Outcome::NoRecords, negative())
    } else if matches!(v4, Family::Timeout) || matches!(v6, Family::Timeout) {
        (Outcome::Timeout, 0)
    } else {
        (Outcome::Error, 0)
    };
    Combined {
        outcome,
        ipv4,
        ipv6,
        ttl,
        error: Some(problems()),
    }
}

/// Classifies one hickory lookup of `rtype` (A or AAAA).
pub fn classify(result: std::result::Result<Lookup, NetError>, rtype: RecordType) -> Family {
    match result {
        Ok(lookup) => {
            let answers = lookup.answers();
            let addrs: Vec<IpAddr> = answers
                .iter()
                .filter_map(|r| match (&r.data, rtype) {
                    (RData::A(a), RecordType::A) => Some(IpAddr::V4(a.0)),
                    (RData::AAAA(a), RecordType::AAAA) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect();
            match answers.iter().map(|r| r.ttl).min() {
                Some(ttl) if !addrs.is_empty() => Family::Addresses { addrs, ttl },
                _ => Family::NoData { negative_ttl: None },
            }
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => {
            if nr.response_code == ResponseCode::NXDomain {
                Family::NxDomain {
                    negative_ttl: nr.negative_ttl,
                }
            } else {
                Family::NoData {
                    negative_ttl: nr.negative_ttl,
                }
            }
        }
        Err(NetError::Timeout) => Family::Timeout,
        Err(NetError::Busy) => Family::Failed("nameserver connection busy".into()),
        Err(e) => Family::Failed(e.to_string()),
    }
}

/// Checks a domain and returns it fully qualified (trailing dot), so that a
/// lookup is exactly one query per family: no search list, no `ndots`.
pub fn normalize_domain(domain: &str) -> std::result::Result<String, String> {
    let bare = domain.strip_suffix('.').unwrap_or(domain);
    if bare.is_empty() {
        return Err("empty domain".into());
    }
    if bare.len() > 253 {
        return Err(format!(
            "domain longer than 253 characters ({})",
            bare.len()
        ));
    }
    if bare.parse::<IpAddr>().is_ok() {
        return Err(format!("{bare:?} is an IP address, not a domain"));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(format!("empty label in {domain:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 characters in {domain:?}"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "invalid character in {domain:?} (letters, digits, '-' and '_' only)"
            ));
        }
    }
    Ok(format!("{bare}."))
}

/// Parses `ip`, `ip:port` or `[v6]:port` (port 53 when absent).
pub fn parse_nameserver(s: &str) -> std::result::Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    match s.parse::<SocketAddr>() {
        Ok(sa) if sa.port() != 0 => Ok(sa),
        Ok(_) => Err(format!("nameserver {s:?}: port 0")),
        Err(_) => Err(format!(
            "nameserver {s:?}: expected an IP address, ip:port or [v6]:port"
        )),
    }
}

fn nameserver_config(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

#[derive(Default)]
struct Counts {
    started: AtomicU64,
    busy: AtomicU64,
    ok: AtomicU64,
    nxdomain: AtomicU64,
    no_records: AtomicU64,
    timeout: AtomicU64,
    error: AtomicU64,
}

impl Counts {
    fn record(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::NxDomain => &self.nxdomain,
            Outcome::NoRecords => &self.no_records,
            Outcome::Timeout => &self.timeout,
            Outcome::Error => &self.error,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

struct Inner {
    resolver: TokioResolver,
    permits: Arc<Semaphore>,
    max_in_flight: u32,
    deadline: Duration,
    counts: Counts,
}

impl Inner {
    async fn lookup(&self, name: &Name, rtype: RecordType) -> Family {
        match tokio::time::timeout(self.deadline, self.resolver.lookup(name.clone(), rtype)).await {
            Ok(result) => classify(result, rtype),
            Err(_) => Family::Timeout,
        }
    }

    async fn resolve(&self, domain: &str) -> Combined {
        let fqdn = match normalize_domain(domain) {
            Ok(d) => d,
            Err(e) => return Combined::failed(Outcome::Error, e),
        };
        let name = match Name::from_ascii(&fqdn) {
            Ok(n) => n,
            Err(e) => return Combined::failed(Outcome::Error, format!("{domain:?}: {e}")),
        };
        let (v4, v6) = tokio::join!(
            self.lookup(&name, RecordType::A),
            self.lookup(&name, RecordType::AAAA)
        );
        combine(v4, v6)
    }
}

fn to_resolution(c: Combined, started: Instant) -> Resolution {
    Resolution {
        outcome: c.outcome.as_str().to_string(),
        ipv4: c.ipv4.iter().map(IpAddr::to_string).collect(),
        ipv6: c.ipv6.iter().map(IpAddr::to_string).collect(),
        ttl_seconds: c.ttl,
        error: c.error,
        elapsed_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
    }
}

/// The gateway's resolver: hickory-resolver with the system configuration or
/// the given nameservers, A and AAAA concurrently, an overall deadline, and at
/// most `maxInFlight` resolutions at once.
#[napi]
pub struct Resolver {
    inner: Arc<Inner>,
    nameservers: Vec<String>,
}

#[napi]
impl Resolver {
    /// Builds a resolver. Throws `InvalidArg` for bad options, and
    /// `GenericFailure` when the system configuration cannot be read.
    #[napi(factory)]
    pub async fn create(options: Option<ResolverOptions>) -> Result<Resolver> {
        let options = options.unwrap_or_default();
        let timeout_ms = options.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(invalid(format!(
                "timeoutMs must be between 1 and {MAX_TIMEOUT_MS}, got {timeout_ms}"
            )));
        }
        let max_in_flight = options.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if max_in_flight == 0 || max_in_flight > MAX_MAX_IN_FLIGHT {
            return Err(invalid(format!(
                "maxInFlight must be between 1 and {MAX_MAX_IN_FLIGHT}, got {max_in_flight}"
            )));
        }
        let deadline = Duration::from_millis(u64::from(timeout_ms));

        let (config, mut opts) = match options.nameservers {
            Some(list) => {
                if list.is_empty() {
                    return Err(invalid("nameservers is empty"));
                }
                let servers = list
                    .iter()
                    .map(|s| parse_nameserver(s).map(nameserver_config))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(invalid)?;
                (
                    ResolverConfig::from_parts(None, Vec::new(), servers),
                    ResolverOpts::default(),
                )
            }
            None => hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                Error::from_reason(format!("cannot read the system DNS configuration: {e}"))
            })?,
        };
        if config.name_servers().is_empty() {
            return Err(Error::from_reason("no nameservers configured"));
        }
        let nameservers = config
            .name_servers()
            .iter()
            .map(|ns| {
                let port = ns.connections.first().map_or(53, |c| c.port);
                SocketAddr::new(ns.ip, port).to_string()
            })
            .collect();

        // One faithful lookup per call: no response cache (the TS layer caches
        // for the TTL), no /etc/hosts, no search list (names are made FQDN).
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        // Each attempt gets at most the whole deadline; resolv.conf's
        // `timeout:`/`attempts:` still apply inside it.
        let attempt = if opts.timeout.is_zero() {
            DEFAULT_ATTEMPT_TIMEOUT
        } else {
            opts.timeout
        };
        opts.timeout = attempt.min(deadline);
        // Both families of every allowed resolution may share one TCP
        // connection; hickory's default (32) would answer "busy" first.
        opts.max_active_requests = opts.max_active_requests.max(
            usize::try_from(max_in_flight)
                .unwrap_or(usize::MAX)
                .saturating_mul(2),
        );

        let mut builder = hickory_resolver::Resolver::builder_with_config(
            config,
            TokioRuntimeProvider::default(),
        );
        *builder.options_mut() = opts;
        let resolver = builder
            .build()
            .map_err(|e| Error::from_reason(format!("cannot build the resolver: {e}")))?;

        Ok(Resolver {
            inner: Arc::new(Inner {
                resolver,
                permits: Arc::new(Semaphore::new(max_in_flight as usize)),
                max_in_flight,
                deadline,
                counts: Counts::default(),
            }),
            nameservers,
        })
    }

    /// Resolves A and AAAA of `domain` concurrently. Never rejects: failures
    /// are outcomes. When `maxInFlight` resolutions are running it answers at
    /// once with outcome `error` and error `busy`.
    #[napi(ts_return_type = "Promise<Resolution>")]
    pub fn resolve<'env>(
        &self,
        env: &'env Env,
        domain: String,
    ) -> Result<PromiseRaw<'env, Resolution>> {
        let started = Instant::now();
        let inner = self.inner.clone();
        // Taken here, on the JavaScript thread, so "busy" is decided in call order.
        let permit = inner.permits.clone().try_acquire_owned().ok();
        env.spawn_future(async move {
            let Some(permit) = permit else {
                inner.counts.busy.fetch_add(1, Ordering::Relaxed);
                return Ok(to_resolution(
                    Combined::failed(Outcome::Error, BUSY),
                    started,
                ));
            };
            inner.counts.started.fetch_add(1, Ordering::Relaxed);
            let combined = inner.resolve(&domain).await;
            drop(permit);
            inner.counts.record(combined.outcome);
            Ok(to_resolution(combined, started))
        })
    }

    /// The nameservers in use, as `ip:port`.
    #[napi(getter)]
    pub fn nameservers(&self) -> Vec<String> {
        self.nameservers.clone()
    }

    /// The overall deadline of one resolution, in milliseconds.
    #[napi(getter)]
    pub fn timeout_ms(&self) -> u32 {
        u32::try_from(self.inner.deadline.as_millis()).unwrap_or(u32::MAX)
    }

    /// Counters since creation.
    #[napi]
    pub fn stats(&self) -> ResolverStats {
        let c = &self.inner.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let available = self.inner.permits.available_permits();
        ResolverStats {
            in_flight: self
                .inner
                .max_in_flight
                .saturating_sub(u32::try_from(available).unwrap_or(u32::MAX)),
            started: get(&c.started),
            busy: get(&c.busy),
            ok: get(&c.ok),
            nxdomain: get(&c.nxdomain),
            no_records: get(&c.no_records),
            timeout: get(&c.timeout),
            error: get(&c.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::net::NoRecords;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::Record;
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, TXT};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn addrs(list: &[&str], ttl: u32) -> Family {
        Family::Addresses {
            addrs: list.iter().map(|s| ip(s)).collect(),
            ttl,
        }
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn addresses_are_sorted_numerically_and_deduplicated() {
        let c = combine(
            addrs(
                &["198.18.50.20", "198.18.50.3", "10.0.0.1", "198.18.50.3"],
                60,
            ),
            addrs(&["2001:db8::10", "2001:db8::9"], 60),
        );
        assert_eq!(c.outcome, Outcome::Ok);
        assert_eq!(
            c.ipv4,
            vec![ip("10.0.0.1"), ip("198.18.50.3"), ip("198.18.50.20")]
        );
        assert_eq!(c.ipv6, vec![ip("2001:db8::9"), ip("2001:db8::10")]);
        assert_eq!(c.error, None);
    }

    #[test]
    fn ttl_is_the_smaller_of_the_two_families() {
        let c = combine(addrs(&["192.0.2.1"], 300), addrs(&["2001:db8::1"], 45));
        assert_eq!(c.ttl, 45);
        let c = combine(addrs(&["192.0.2.1"], 20), addrs(&["2001:db8::1"], 45));
        assert_eq!(c.ttl, 20);
    }

    #[test]
    fn one_family_with_records_is_ok() {
        let c = combine(
            addrs(&["192.0.2.1"], 77),
            Family::NoData {
                negative_ttl: Some(5),
            },
        );
        assert_eq!(c.outcome, Outcome::Ok);
        assert_eq!(
            c.ttl, 77,
            "a negative answer of the other family does not lower the TTL"
        );
        assert_eq!(c.error, None);
        let c = combine(Family::Timeout, addrs(&["2001:db8::1"], 9));
        assert_eq!(c.outcome, Outcome::Ok);
        assert_eq!(c.ipv6, vec![ip("2001:db8::1")]);
        assert_eq!(c.error.as_deref(), Some("A: timed out"));
    }

    #[test]
    fn nxdomain_wins_without_addresses() {
        let c = combine(
            Family::NxDomain {
                negative_ttl: Some(120),
            },
            Family::Timeout,
        );
        assert_eq!(c.outcome, Outcome::NxDomain);
        assert_eq!(c.ttl, 120);
        assert!(c.ipv4.is_empty() && c.ipv6.is_empty());
    }

    #[test]
    fn negative_ttl_defaults_and_is_capped() {
        let nx = |t| Family::NxDomain { negative_ttl: t };
        assert_eq!(combine(nx(None), nx(None)).ttl, DEFAULT_NEGATIVE_TTL);
        assert_eq!(combine(nx(Some(86_400)), nx(None)).ttl, MAX_NEGATIVE_TTL);
        assert_eq!(combine(nx(Some(600)), nx(Some(7))).ttl, 7);
        let nd = |t| Family::NoData { negative_ttl: t };
        let c = combine(nd(Some(11)), nd(None));
        assert_eq!((c.outcome, c.ttl), (Outcome::NoRecords, 11));
    }

    #[test]
    fn no_records_needs_both_families() {
        let nd = Family::NoData { negative_ttl: None };
        let c = combine(nd.clone(), Family::Timeout);
        assert_eq!((c.outcome, c.ttl), (Outcome::Timeout, 0));
        assert_eq!(c.error.as_deref(), Some("A: no records; AAAA: timed out"));
        let c = combine(nd, Family::Failed("SERVFAIL".into()));
        assert_eq!((c.outcome, c.ttl), (Outcome::Error, 0));
    }

    #[test]
    fn timeout_beats_error_and_error_is_last() {
        let c = combine(Family::Failed("x".into()), Family::Timeout);
        assert_eq!(c.outcome, Outcome::Timeout);
        let c = combine(Family::Failed("x".into()), Family::Failed("y".into()));
        assert_eq!(c.outcome, Outcome::Error);
        assert_eq!(c.error.as_deref(), Some("A: x; AAAA: y"));
    }

    #[test]
    fn classify_takes_addresses_of_the_asked_type_and_the_min_ttl_of_the_chain() {
        let q = Query::query(name("alias.example."), RecordType::A);
        let records = [
            Record::from_rdata(
                name("alias.example."),
                30,
                RData::CNAME(CNAME(name("real.example."))),
            ),
            Record::from_rdata(name("real.example."), 77, RData::A(A::new(192, 0, 2, 7))),
            Record::from_rdata(name("real.example."), 90, RData::A(A::new(192, 0, 2, 1))),
        ];
        let f = classify(Ok(Lookup::new_with_max_ttl(q, records)), RecordType::A);
        assert_eq!(f, addrs(&["192.0.2.7", "192.0.2.1"], 30));
    }

    #[test]
    fn classify_without_matching_records_is_no_data() {
        let q = Query::query(name("t.example."), RecordType::AAAA);
        let records = [
            Record::from_rdata(
                name("t.example."),
                5,
                RData::TXT(TXT::new(vec!["x".into()])),
            ),
            Record::from_rdata(name("t.example."), 5, RData::A(A::new(192, 0, 2, 1))),
        ];
        let f = classify(Ok(Lookup::new_with_max_ttl(q, records)), RecordType::AAAA);
        assert_eq!(f, Family::NoData { negative_ttl: None });
        let q = Query::query(name("t.example."), RecordType::AAAA);
        let six = [Record::from_rdata(
            name("t.example."),
            8,
            RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        )];
        let f = classify(Ok(Lookup::new_with_max_ttl(q, six)), RecordType::AAAA);
        assert_eq!(f, addrs(&["2001:db8::1"], 8));
    }

    #[test]
    fn classify_maps_negative_answers_and_errors() {
        let q = Query::query(name("n.example."), RecordType::A);
        let mut nx = NoRecords::new(q.clone(), ResponseCode::NXDomain);
        nx.negative_ttl = Some(42);
        let f = classify(
            Err(NetError::from(DnsError::NoRecordsFound(nx))),
            RecordType::A,
        );
        assert_eq!(
            f,
            Family::NxDomain {
                negative_ttl: Some(42)
            }
        );
        let nodata = NoRecords::new(q, ResponseCode::NoError);
        let f = classify(
            Err(NetError::from(DnsError::NoRecordsFound(nodata))),
            RecordType::A,
        );
        assert_eq!(f, Family::NoData { negative_ttl: None });
        assert_eq!(
            classify(Err(NetError::Timeout), RecordType::A),
            Family::Timeout
        );
        let servfail = NetError::from(DnsError::ResponseCode(ResponseCode::ServFail));
        assert!(
            matches!(classify(Err(servfail), RecordType::A), Family::Failed(m) if m.contains("Server Failure")),
        );
    }

    #[test]
    fn domains_are_checked_and_made_fully_qualified() {
        assert_eq!(
            normalize_domain("ok.corp.example").unwrap(),
            "ok.corp.example."
        );
        assert_eq!(
            normalize_domain("ok.corp.example.").unwrap(),
            "ok.corp.example."
        );
        assert_eq!(
            normalize_domain("_svc.x-y.example").unwrap(),
            "_svc.x-y.example."
        );
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "a b.example",
            "a/b.example",
            "é.example",
            "10.0.0.1",
            "::1",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalize_domain(&format!("{}.example", "a".repeat(64))).is_err());
        assert!(normalize_domain(&format!("{}.example", "a".repeat(63))).is_ok());
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(long.len() > 253);
        assert!(normalize_domain(&long).is_err());
    }

    #[test]
    fn nameservers_parse_with_and_without_port() {
        assert_eq!(
            parse_nameserver("10.0.0.53").unwrap(),
            "10.0.0.53:53".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("10.0.0.53:5353").unwrap(),
            "10.0.0.53:5353".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("2001:db8::53").unwrap(),
            "[2001:db8::53]:53".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("[2001:db8::53]:5300").unwrap(),
            "[2001:db8::53]:5300".parse().unwrap()
        );
        for bad in [
            "",
            "dns.example",
            "10.0.0.53:0",
            "10.0.0.53:99999",
            "10.0.0",
        ] {
            assert!(parse_nameserver(bad).is_err(), "{bad:?} accepted");
        }
    }
}
