//! The client role of a tunnel: the stub DNS resolver on the sentinel
//! addresses, and the per-key gate between applications and gateways.
//!
//! A packet to a proxy IP is routed here by destination: proxy IP → its domain
//! (the stub's allocator) → the most specific resource → (gateway, domain,
//! resource), the key of the TypeScript state machine. The gate then passes or
//! buffers it. Keys JavaScript never gated start buffering: the DNS answer
//! leaves before JavaScript has seen the query, and the application's first
//! packet must wait for the NAT, not race it.

pub mod dns_server;
pub mod table;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use dnsnat_core::constants::{is_proxy_v4, is_proxy_v6};
use dnsnat_core::dns::{Stub, StubEvent};
use dnsnat_core::gate::{GateMode, GateTable};
use tokio::sync::{Notify, Semaphore};

use crate::events::{DnsMatch, TunnelEvent};

/// At most one `pending-traffic` event per key per this interval: the state
/// machine's own resend gate is 2 s, so more would be noise.
const PENDING_EVENT_INTERVAL: Duration = Duration::from_millis(500);

/// A repeated DNS query for a domain, within this long of its last report and
/// with nothing else happening in between, is reported only as a seen query
/// (docs/decisions.md, "Client: repeated DNS queries reach JavaScript as a count"): the TTL of the stub's answers,
/// so an application that honours it is reported every time.
const REPEAT_WINDOW_MS: u64 = 1000;

/// Queries relayed to the upstream resolvers at once. Each holds a task and a
/// 64 KiB receive buffer for up to 3 s per upstream, so without a bound a
/// burst of names nobody answers grows memory without limit; past it a query
/// gets SERVFAIL at once (the application retries, or tries its next server).
pub const MAX_FORWARDS: usize = 256;
/// TCP connections to the stub at once; one more is closed as soon as it is
/// accepted. Applications use TCP only after a truncated UDP answer.
pub const MAX_TCP_CONNECTIONS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NatKey {
    pub gateway: String,
    pub domain: String,
    pub resource: String,
}

#[derive(Default)]
pub struct ClientCounters {
    pub dns_upstream_failures: AtomicU64,
    pub drop_unknown_proxy_ip: AtomicU64,
    pub drop_no_gateway: AtomicU64,
    pub buffered: AtomicU64,
    pub buffer_overflow: AtomicU64,
    pub flushed: AtomicU64,
    pub discarded: AtomicU64,
    /// Queries answered SERVFAIL because `MAX_FORWARDS` were already in flight.
    pub dns_forwards_refused: AtomicU64,
    /// TCP connections closed at once because `MAX_TCP_CONNECTIONS` were open.
    pub dns_tcp_refused: AtomicU64,
    /// Failed `accept` or `recv` calls on the stub's sockets (each followed by a pause).
    pub dns_socket_errors: AtomicU64,
    /// Packets from a gateway not addressed to this client's tunnel address.
    pub drop_not_for_us: AtomicU64,
    /// Packets from a proxy IP sent by a gateway that does not serve its resource.
    pub drop_proxy_source_not_served: AtomicU64,
}

/// Gate keys interned as small integers, so the packet path hashes and copies
/// a `u32` instead of three strings; the strings are needed only for events.
/// A domain that gives its proxy IPs up takes its keys with it, so the table
/// holds only keys of domains with addresses. Ids are never reused (a packet
/// in flight with a stale id finds nothing rather than another key).
#[derive(Default)]
pub struct KeyIds {
    by_key: HashMap<NatKey, u32>,
    keys: HashMap<u32, NatKey>,
    by_domain: HashMap<String, Vec<u32>>,
    next: u32,
}

impl KeyIds {
    pub fn intern(&mut self, key: NatKey) -> u32 {
        if let Some(id) = self.by_key.get(&key) {
            return *id;
        }
        // Ids are not reused while in use, even after 2^32 of them.
        while self.keys.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1);
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.by_domain
            .entry(key.domain.clone())
            .or_default()
            .push(id);
        self.keys.insert(id, key.clone());
        self.by_key.insert(key, id);
        id
    }

    pub fn get(&self, id: u32) -> Option<&NatKey> {
        self.keys.get(&id)
    }

    /// Forgets the keys of `domain`; returns their ids.
    pub fn remove_domain(&mut self, domain: &str) -> Vec<u32> {
        let ids = self.by_domain.remove(domain).unwrap_or_default();
        for id in &ids {
            if let Some(key) = self.keys.remove(id) {
                self.by_key.remove(&key);
            }
        }
        ids
    }

    fn ids(&self) -> impl Iterator<Item = (u32, &NatKey)> {
        self.keys.iter().map(|(id, k)| (*id, k))
    }
}

/// The packet path's cache of proxy IP → key, with the addresses that
/// carried traffic since the stub last heard of it (uses of their domains).
#[derive(Default)]
struct Routes {
    by_ip: HashMap<IpAddr, (u32, bool)>,
    /// The cached addresses of each key, so that forgetting a key forgets
    /// every route to it (including addresses its domain got after a release
    /// that was not yet taken).
    by_id: HashMap<u32, Vec<IpAddr>>,
    used: Vec<IpAddr>,
}

impl Routes {
    fn insert(&mut self, ip: IpAddr, id: u32, used: bool) {
        self.by_ip.insert(ip, (id, used));
        self.by_id.entry(id).or_default().push(ip);
        if used {
            self.used.push(ip);
        }
    }

    fn clear(&mut self) {
        self.by_ip.clear();
        self.by_id.clear();
    }

    fn forget_key(&mut self, id: u32) {
        for ip in self.by_id.remove(&id).unwrap_or_default() {
            self.by_ip.remove(&ip);
        }
    }
}

pub struct ClientRole {
    pub stub: Mutex<Stub>,
    pub gates: Mutex<GateTable<u32>>,
    pub keys: Mutex<KeyIds>,
    /// Gateway id → the peer's public key.
    pub gateways: RwLock<HashMap<String, [u8; 32]>>,
    /// Proxy IP → key, cached so the packet path does not re-run pattern
    /// matching; cleared when resources change.
    routes: Mutex<Routes>,
    last_pending_event: Mutex<HashMap<u32, Instant>>,
    pub upstream: Vec<SocketAddr>,
    /// This client's own tunnel addresses: the only destinations a gateway's
    /// packets may have.
    pub tunnel_ips: Vec<IpAddr>,
    /// Rows of the seeded proxy-IP table that were left out, and why.
    pub seed_rejections: Vec<String>,
    /// Upstream forwards in flight (UDP), at most `MAX_FORWARDS`.
    pub forwards: Arc<Semaphore>,
    /// Open TCP connections to the stub, at most `MAX_TCP_CONNECTIONS`.
    pub tcp_connections: Arc<Semaphore>,
    pub events_ready: Notify,
    pub counters: ClientCounters,
    /// Commands from JavaScript that may follow a change of the state machine
    /// (gate, flush, discard, clear, new resources), counted.
    commands: AtomicU64,
    /// The event sink's count of events other than the stub's.
    others: OnceLock<Arc<AtomicU64>>,
    started: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn is_proxy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_proxy_v4(a),
        IpAddr::V6(a) => is_proxy_v6(a),
    }
}

impl ClientRole {
    pub fn new(mut stub: Stub, upstream: Vec<SocketAddr>) -> ClientRole {
        stub.set_repeat_window(REPEAT_WINDOW_MS);
        ClientRole {
            stub: Mutex::new(stub),
            gates: Mutex::new(GateTable::new(GateMode::Buffer)),
            keys: Mutex::new(KeyIds::default()),
            gateways: RwLock::new(HashMap::new()),
            routes: Mutex::new(Routes::default()),
            last_pending_event: Mutex::new(HashMap::new()),
            upstream,
            tunnel_ips: Vec::new(),
            seed_rejections: Vec::new(),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            tcp_connections: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
            events_ready: Notify::new(),
            counters: ClientCounters::default(),
            commands: AtomicU64::new(0),
            others: OnceLock::new(),
            started: Instant::now(),
        }
    }

    pub fn stub(&self) -> MutexGuard<'_, Stub> {
        lock(&self.stub)
    }

    /// The stub, with its clock and epoch set for a query or taking events.
    pub fn stub_now(&self) -> MutexGuard<'_, Stub> {
        self.stub_at(self.epoch())
    }

    fn stub_at(&self, epoch: u64) -> MutexGuard<'_, Stub> {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut stub = lock(&self.stub);
        stub.set_clock(now_ms, epoch);
        stub
    }

    /// Changes whenever something other than a DNS query may have changed the
    /// state machine's entries: both counts only grow, so their sum moves
    /// whenever either does.
    pub fn epoch(&self) -> u64 {
        self.commands
            .load(Ordering::SeqCst)
            .wrapping_add(self.others.get().map_or(0, |o| o.load(Ordering::SeqCst)))
    }

    /// Something may have changed the state machine: the next query of every
    /// domain is reported to JavaScript.
    pub fn note_command(&self) {
        self.commands.fetch_add(1, Ordering::SeqCst);
    }

    /// Follows the event sink's count of events other than the stub's.
    pub fn follow_events(&self, others: Arc<AtomicU64>) {
        let _ = self.others.set(others);
    }

    pub fn gates(&self) -> MutexGuard<'_, GateTable<u32>> {
        lock(&self.gates)
    }

    /// The id of a key named by JavaScript (for a command about it: gate,
    /// flush, discard); none when its domain holds no proxy IPs (released
    /// while the command was on its way), so a late command never brings back
    /// a key the release forgot.
    pub fn key_id(&self, key: NatKey) -> Option<u32> {
        self.note_command();
        self.stub().allocator().get(&key.domain)?;
        Some(lock(&self.keys).intern(key))
    }

    /// Runs `f` on a key without copying it (the packet path).
    pub fn with_key<T>(&self, id: u32, f: impl FnOnce(&NatKey) -> T) -> Option<T> {
        lock(&self.keys).get(id).map(f)
    }

    /// Keys interned now (one per (gateway, domain, resource) in use).
    pub fn key_count(&self) -> usize {
        lock(&self.keys).keys.len()
    }

    pub fn key(&self, id: u32) -> Option<NatKey> {
        lock(&self.keys).get(id).cloned()
    }

    /// The ids of keys matching `pred` (clearing a gateway or a resource).
    ///
    /// A clear is also how JavaScript says an entry failed by timeout: the
    /// repeats the last batch held back may already be on their way to it,
    /// behind that change, so they are reported again in the next batch.
    pub fn key_ids_where(&self, mut pred: impl FnMut(&NatKey) -> bool) -> Vec<u32> {
        self.note_command();
        let ids = {
            let keys = lock(&self.keys);
            keys.ids()
                .filter(|(_, k)| pred(k))
                .map(|(id, _)| id)
                .collect()
        };
        let mut stub = self.stub();
        stub.report_last_held();
        if stub.has_events() {
            self.events_ready.notify_one();
        }
        ids
    }

    pub fn invalidate_routes(&self) {
        self.note_command();
        let mut routes = lock(&self.routes);
        let used = std::mem::take(&mut routes.used);
        routes.clear();
        drop(routes);
        self.stub().touch_proxy_ips(used);
    }

    /// The key of a packet to `dst`, if `dst` is an allocated proxy IP of a
    /// configured resource. When one domain matches resources on several
    /// gateways, the first in configuration order carries its traffic.
    pub fn route(&self, dst: IpAddr) -> Option<u32> {
        self.lookup_route(dst, true)
    }

    /// [`ClientRole::route`], marking the address used (its name carried
    /// traffic) only when `use_it`.
    fn lookup_route(&self, dst: IpAddr, use_it: bool) -> Option<u32> {
        {
            let mut routes = lock(&self.routes);
            if let Some((id, used)) = routes.by_ip.get_mut(&dst) {
                let id = *id;
                if use_it && !*used {
                    *used = true;
                    routes.used.push(dst);
                }
                return Some(id);
            }
        }
        // The stub stays locked until the route is cached: a release of this
        // domain (in the stub) and the forgetting of its keys and routes (at
        // the next batch) can then only come wholly before or after, never
        // leave a route to a key that is gone. Lock order: stub, keys, routes.
        let stub = self.stub();
        let key = stub.route_proxy_ip(dst).and_then(|(domain, resources)| {
            resources.first().map(|r| NatKey {
                gateway: r.gateway_id.clone(),
                domain: domain.to_string(),
                resource: r.id.clone(),
            })
        });
        // Only positive answers are cached: a proxy IP allocated a moment from
        // now must not stay unroutable.
        let id = lock(&self.keys).intern(key?);
        lock(&self.routes).insert(dst, id, use_it);
        drop(stub);
        Some(id)
    }

    /// Tells the stub which proxy IPs carried traffic since the last call
    /// (their domains were used), then releases the domains idle for
    /// `idle_ms`. Costs the addresses used and the domains released.
    pub fn age_names(&self, idle_ms: u64) {
        let used = {
            let mut routes = lock(&self.routes);
            let used = std::mem::take(&mut routes.used);
            for ip in &used {
                if let Some((_, flag)) = routes.by_ip.get_mut(ip) {
                    *flag = false;
                }
            }
            used
        };
        let mut stub = self.stub_now();
        stub.touch_proxy_ips(used);
        stub.release_idle(idle_ms);
        if stub.has_events() {
            self.events_ready.notify_one();
        }
    }

    /// Forgets what the packet path holds for domains that gave their proxy
    /// IPs up: keys, gates with their buffers, cached routes.
    fn forget_released(&self, released: &[dnsnat_core::dns::Released]) {
        let mut ids = Vec::new();
        {
            let mut keys = lock(&self.keys);
            for r in released {
                ids.extend(keys.remove_domain(&r.domain));
            }
        }
        {
            let mut gates = self.gates();
            let mut discarded = 0;
            for id in &ids {
                discarded += gates.remove(id);
            }
            self.counters
                .discarded
                .fetch_add(discarded as u64, Ordering::Relaxed);
        }
        {
            let mut last = lock(&self.last_pending_event);
            for id in &ids {
                last.remove(id);
            }
        }
        let mut routes = lock(&self.routes);
        for id in &ids {
            routes.forget_key(*id);
        }
        for r in released {
            for ip in r.ips.iter() {
                routes.by_ip.remove(&ip);
            }
        }
    }

    /// Whether a packet decrypted from the gateway whose public key is `from`
    /// may reach the device, counting a drop. It must be addressed to this
    /// client's own tunnel address (nothing else on the host, the stub's
    /// sentinel included, is reachable through the tunnel), and a source
    /// that is a proxy IP must be one of a resource this gateway serves:
    /// cryptokey routing lets every gateway send from the whole proxy range,
    /// so without this check one gateway could speak for another's resources.
    pub fn admits_inbound(&self, from: &[u8; 32], src: IpAddr, dst: IpAddr) -> bool {
        if !self.tunnel_ips.contains(&dst) {
            self.counters
                .drop_not_for_us
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if is_proxy(src) {
            // Not a use of the name: a gateway must not keep another's names
            // alive by sending from their addresses.
            let serving = self
                .lookup_route(src, false)
                .and_then(|id| self.with_key(id, |k| self.gateway_key(&k.gateway)))
                .flatten();
            if serving.as_ref() != Some(from) {
                self.counters
                    .drop_proxy_source_not_served
                    .fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        true
    }

    pub fn gateway_key(&self, gateway: &str) -> Option<[u8; 32]> {
        self.gateways
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(gateway)
            .copied()
    }

    /// Whether to tell JavaScript that traffic waits on `key` now.
    pub fn should_report_pending(&self, id: u32, now: Instant) -> bool {
        let mut last = lock(&self.last_pending_event);
        match last.get(&id) {
            Some(t) if now.duration_since(*t) < PENDING_EVENT_INTERVAL => false,
            _ => {
                last.insert(id, now);
                true
            }
        }
    }

    /// The stub's pending events, as tunnel events, and the epoch they were
    /// taken in.
    pub fn take_events(&self) -> (Vec<TunnelEvent>, u64) {
        let epoch = self.epoch();
        let events = self.stub_at(epoch).take_events();
        for e in &events {
            if let StubEvent::ProxyIpsReleased { released } = e {
                self.forget_released(released);
            }
        }
        let events = events
            .into_iter()
            .map(|e| match e {
                StubEvent::ResourceQuery(q) => TunnelEvent {
                    domain: Some(q.domain),
                    query_type: Some(u32::from(q.query_type)),
                    newly_allocated: Some(q.newly_allocated),
                    matches: Some(
                        q.matches
                            .into_iter()
                            .map(|m| DnsMatch {
                                gateway_id: m.gateway_id,
                                resource_id: m.resource_id,
                                proxy_ips: m.proxy_ips.iter().map(|a| a.to_string()).collect(),
                            })
                            .collect(),
                    ),
                    ..TunnelEvent::peer("dns-query", "")
                },
                StubEvent::QueriesSeen { count } => TunnelEvent {
                    count: Some(count as f64),
                    ..TunnelEvent::peer("queries-seen", "")
                },
                StubEvent::ProxyIpsExhausted { domain, message } => TunnelEvent {
                    domain: Some(domain),
                    body: Some(message),
                    ..TunnelEvent::peer("proxy-ips-exhausted", "")
                },
                StubEvent::ProxyIpsReleased { released } => TunnelEvent {
                    domains: Some(released.into_iter().map(|r| r.domain).collect()),
                    ..TunnelEvent::peer("proxy-ips-released", "")
                },
            })
            .collect();
        (events, epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnsnat_core::dns::{ProxyIpAllocator, ResourceTable, StubOptions};

    fn role() -> ClientRole {
        let stub = Stub::new(
            ResourceTable::default(),
            ProxyIpAllocator::new(),
            StubOptions::default(),
        );
        ClientRole::new(stub, Vec::new())
    }

    fn key(domain: &str) -> NatKey {
        NatKey {
            gateway: "gw".into(),
            domain: domain.into(),
            resource: "r".into(),
        }
    }

    #[test]
    fn commands_and_foreign_events_end_the_epoch_and_routing_does_not() {
        let r = role();
        let e0 = r.epoch();
        r.key_id(key("a.example")); // gate, flush, discard (no proxy IPs: no key)
        let e1 = r.epoch();
        assert_ne!(e0, e1);
        r.key_ids_where(|_| false); // clearGates, even an empty one
        let e2 = r.epoch();
        assert_ne!(e1, e2);
        r.invalidate_routes(); // setResources
        let e3 = r.epoch();
        assert_ne!(e2, e3);
        // The packet path's lookups are not commands.
        assert_eq!(r.route("100.96.0.1".parse().unwrap()), None);
        assert_eq!(r.epoch(), e3);
        // The event sink's count of other events moves it too.
        let others = Arc::new(AtomicU64::new(0));
        r.follow_events(others.clone());
        assert_eq!(r.epoch(), e3);
        others.fetch_add(1, Ordering::SeqCst);
        assert_ne!(r.epoch(), e3);
        // A clear reports again what the last batch held back.
        let resources = ResourceTable::new([dnsnat_core::dns::Resource {
            id: "r".into(),
            gateway_id: "gw".into(),
            pattern: dnsnat_core::pattern::Pattern::parse("*.example").unwrap(),
            ip_stack: dnsnat_core::dns::IpStack::Ipv4,
        }])
        .unwrap();
        r.stub().set_resources(resources);
        let a_query = [
            0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 7, b'e', b'x', b'a', b'm', b'p', b'l',
            b'e', 0, 0, 1, 0, 1,
        ];
        let mut out = Vec::new();
        let kinds =
            |events: Vec<TunnelEvent>| events.into_iter().map(|e| e.kind).collect::<Vec<_>>();
        r.stub_now()
            .handle_query(&a_query, dnsnat_core::dns::Transport::Udp, &mut out);
        assert_eq!(kinds(r.take_events().0), ["dns-query"]);
        r.stub_now()
            .handle_query(&a_query, dnsnat_core::dns::Transport::Udp, &mut out);
        assert_eq!(kinds(r.take_events().0), ["queries-seen"]);
        r.key_ids_where(|_| false);
        assert_eq!(kinds(r.take_events().0), ["dns-query"]);
    }

    /// A role serving `*.example` (IPv4) that holds proxy IPs for one name at most.
    fn one_name_role() -> ClientRole {
        let r = role();
        let resources = ResourceTable::new([dnsnat_core::dns::Resource {
            id: "r".into(),
            gateway_id: "gw".into(),
            pattern: dnsnat_core::pattern::Pattern::parse("*.example").unwrap(),
            ip_stack: dnsnat_core::dns::IpStack::Ipv4,
        }])
        .unwrap();
        r.stub().set_resources(resources);
        r.stub().set_max_domains(1);
        r
    }

    /// An A query for `<label>.example`.
    fn one_label_query(label: u8) -> [u8; 27] {
        [
            0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, label, 7, b'e', b'x', b'a', b'm', b'p', b'l',
            b'e', 0, 0, 1, 0, 1,
        ]
    }

    #[test]
    fn a_released_domain_takes_its_keys_gates_and_routes_with_it() {
        let r = one_name_role();
        let mut out = Vec::new();
        r.stub_now().handle_query(
            &one_label_query(b'a'),
            dnsnat_core::dns::Transport::Udp,
            &mut out,
        );
        r.take_events();
        let a_ip = IpAddr::V4(r.stub().allocator().get("a.example").unwrap().v4[0]);
        let id = r
            .key_id(key("a.example"))
            .expect("a.example holds proxy IPs");
        r.gates().set_mode(id, GateMode::Buffer);
        r.gates().admit(&id, &[0x45; 20]);
        assert_eq!(r.route(a_ip), Some(id));
        assert_eq!(r.key_count(), 1);

        // b.example takes a's place.
        r.stub_now().handle_query(
            &one_label_query(b'b'),
            dnsnat_core::dns::Transport::Udp,
            &mut out,
        );
        let events = r.take_events().0;
        let released = events
            .iter()
            .find(|e| e.kind == "proxy-ips-released")
            .expect("a release event");
        assert_eq!(
            released.domains.as_deref(),
            Some(&["a.example".to_string()][..])
        );
        assert_eq!(r.key_count(), 0);
        assert_eq!(r.gates().buffered(&id), 0);
        assert_eq!(r.counters.discarded.load(Ordering::Relaxed), 1);
        assert_eq!(r.route(a_ip), None);
        // A late command about it brings nothing back.
        assert_eq!(r.key_id(key("a.example")), None);
        assert_eq!(r.key_count(), 0);
    }

    #[test]
    fn a_name_released_and_asked_again_before_the_batch_is_taken_still_routes() {
        let r = one_name_role();
        let mut out = Vec::new();
        let ask = |label: u8, out: &mut Vec<u8>| {
            r.stub_now().handle_query(
                &one_label_query(label),
                dnsnat_core::dns::Transport::Udp,
                out,
            );
        };
        ask(b'a', &mut out);
        r.take_events();
        let first = IpAddr::V4(r.stub().allocator().get("a.example").unwrap().v4[0]);
        let old_id = r.route(first).unwrap();
        // b takes a's place, then a comes back with other addresses, and an
        // application sends to them, all before the batch is taken.
        ask(b'b', &mut out);
        ask(b'a', &mut out);
        let again = IpAddr::V4(r.stub().allocator().get("a.example").unwrap().v4[0]);
        assert_ne!(again, first);
        assert_eq!(r.route(again), Some(old_id), "the key is still the old one");
        r.take_events();
        // The batch forgot a's old key and every route to it; the next packet
        // finds a fresh key, which names a.example.
        let id = r.route(again).expect("a.example routes again");
        assert_ne!(id, old_id);
        assert_eq!(r.key(id).map(|k| k.domain), Some("a.example".to_string()));
        assert_eq!(r.route(first), None);
    }
}
