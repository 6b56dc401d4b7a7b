//! The stub's decision for one query (docs/architecture.md#one-dns-query).
//!
//! | query | answer |
//! |---|---|
//! | fewer than 12 bytes, or a response (QR set) | dropped, counted |
//! | header readable, body not; or not exactly one question | FORMERR |
//! | EDNS version above 0 | BADVERS |
//! | opcode other than QUERY, class other than IN | forwarded |
//! | A / AAAA / ANY for a resource name | proxy IPs of the resources' stack, TTL 1 s (allocated on first use); empty NOERROR for a family no matching resource serves |
//! | HTTPS / SVCB for a resource name | empty NOERROR |
//! | PTR for a proxy IP | the domain; NXDOMAIN if the address was never handed out |
//! | `use-application-dns.net` (option, default on) | NXDOMAIN, so Firefox does not bypass the stub with DoH |
//! | anything else, any non-resource name | forwarded unchanged |
//!
//! The stub is pure: no sockets, no clock. The runtime sends the answer, relays
//! forwarded queries, and drains [`Stub::take_events`] in batches.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::events::{DEFAULT_EVENT_CAPACITY, EventQueue, ResourceMatch, ResourceQuery, StubEvent};
use super::message::{self, RawHeader, Rdata, Reply, ReplyEdns};
use super::proxy_ips::{ProxyIpAllocator, ProxyIpTable, ProxyIps};
use super::resources::{Resource, ResourceTable};
use crate::constants::{PROXY_IPS_PER_FAMILY, is_proxy_v4, is_proxy_v6};

/// The name Firefox queries to decide whether to enable DNS over HTTPS.
pub const DOH_CANARY: &str = "use-application-dns.net";

/// How the query arrived: UDP answers are limited to the client's buffer size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryDropReason {
    /// Fewer than 12 bytes: not even a header to reply to.
    Unreadable,
    /// A response (QR set) sent to the stub: never answered, so no reflection loops.
    NotAQuery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubAction {
    /// The answer is in the output buffer: send it back on the same transport.
    Answer,
    /// Relay the query bytes unchanged to the upstream resolver, and its answer
    /// unchanged to the client.
    Forward,
    /// Send nothing.
    Drop(QueryDropReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubOptions {
    /// Answer NXDOMAIN for Firefox's DoH canary domain (default: on).
    pub block_doh_canary: bool,
    /// The UDP payload size the stub advertises in its OPT record (default 1232,
    /// the DNS Flag Day 2020 value that avoids IP fragmentation).
    pub advertised_udp_payload: u16,
    /// Bound of the event queue between two drains.
    pub event_capacity: usize,
}

impl Default for StubOptions {
    fn default() -> Self {
        Self {
            block_doh_canary: true,
            advertised_udp_payload: 1232,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }
}

/// Counters, monotonic since the stub was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StubStats {
    pub queries: u64,
    /// Answered locally (proxy IPs, empty answers, PTR, NXDOMAIN, FORMERR, SERVFAIL…).
    pub answered: u64,
    pub forwarded: u64,
    pub resource_queries: u64,
    pub formerr: u64,
    pub dropped_unreadable: u64,
    pub dropped_not_query: u64,
    pub truncated: u64,
    pub proxy_ips_exhausted: u64,
    pub events_dropped: u64,
    pub events_coalesced: u64,
    /// Resource queries reported only as seen queries: repeats of a report in
    /// the same epoch and window (see [`Stub::set_repeat_window`]).
    pub events_repeats: u64,
}

/// When a domain's resource query was last reported, and in which epoch.
#[derive(Debug, Clone, Copy)]
struct Reported {
    at_ms: u64,
    epoch: u64,
}

/// Holding back repeated resource queries (docs/decisions.md, "Repeated DNS
/// queries"). A query for a domain already reported, with the same matches,
/// within `window_ms` of that report and in the same epoch (the runtime's
/// count of everything that may have changed the state machine's entries:
/// statuses, peers, gate commands, resources) carries no information for the
/// state machine beyond "a DNS query arrived": it is counted in `QueriesSeen`.
/// It is remembered until the batch is taken, and reported after all if the
/// epoch has changed by then (an event that reaches JavaScript before it).
#[derive(Debug, Default)]
struct Repeats {
    /// 0: every query is reported.
    window_ms: u64,
    now_ms: u64,
    epoch: u64,
    reported: HashMap<String, Reported>,
    /// Repeats held back in the current batch: domain, query type, and the
    /// epoch they were held in (`None`: report them at the next take).
    held: Vec<(String, u16, Option<u64>)>,
    /// The repeats the last take left out, until the next take.
    last_held: Vec<(String, u16)>,
}

impl Repeats {
    fn is_repeat(&self, domain: &str) -> bool {
        self.window_ms > 0
            && self.reported.get(domain).is_some_and(|r| {
                r.epoch == self.epoch && self.now_ms.saturating_sub(r.at_ms) < self.window_ms
            })
    }

    fn note_reported(&mut self, domain: &str) {
        if self.window_ms == 0 {
            return;
        }
        let r = Reported {
            at_ms: self.now_ms,
            epoch: self.epoch,
        };
        match self.reported.get_mut(domain) {
            Some(slot) => *slot = r,
            None => {
                self.reported.insert(domain.to_owned(), r);
            }
        }
    }
}

/// The stub resolver's state: resources, the proxy IP table, pending events, counters.
#[derive(Debug)]
pub struct Stub {
    resources: ResourceTable,
    allocator: ProxyIpAllocator,
    events: EventQueue,
    stats: StubStats,
    options: StubOptions,
    repeats: Repeats,
}

/// What a parsed, well-formed query turned out to be.
enum Decision {
    Forward,
    Reply { rcode: u16, answers: Answers },
}

/// The records of a local answer.
#[derive(Default)]
struct Answers {
    v4: Option<[Ipv4Addr; PROXY_IPS_PER_FAMILY]>,
    v6: Option<[Ipv6Addr; PROXY_IPS_PER_FAMILY]>,
    ptr: Option<String>,
}

const NOERROR: u16 = 0;
const FORMERR: u16 = 1;
const SERVFAIL: u16 = 2;
const NXDOMAIN: u16 = 3;
const BADVERS: u16 = 16;

impl Stub {
    pub fn new(
        resources: ResourceTable,
        allocator: ProxyIpAllocator,
        options: StubOptions,
    ) -> Self {
        let events = EventQueue::new(options.event_capacity);
        Self {
            resources,
            allocator,
            events,
            stats: StubStats::default(),
            options,
            repeats: Repeats::default(),
        }
    }

    /// Holds back repeats of a reported resource query for `window_ms` (0, the
    /// default, reports every query). See [`Stub::set_clock`].
    pub fn set_repeat_window(&mut self, window_ms: u64) {
        self.repeats.window_ms = window_ms;
        if window_ms == 0 {
            self.repeats.reported.clear();
        }
    }

    /// The runtime's clock (milliseconds, monotonic) and epoch, for the next
    /// queries and [`Stub::take_events`]. The epoch must change whenever
    /// something other than a DNS query may change the state machine's
    /// entries: a control message or peer event on its way to JavaScript, a
    /// command from JavaScript, new resources. The stub reads no clock itself.
    pub fn set_clock(&mut self, now_ms: u64, epoch: u64) {
        self.repeats.now_ms = now_ms;
        self.repeats.epoch = epoch;
        self.allocator
            .set_now(i64::try_from(now_ms).unwrap_or(i64::MAX));
    }

    /// Domains holding proxy IPs at most; see [`ProxyIpAllocator`].
    pub fn set_max_domains(&mut self, max: usize) {
        self.allocator.set_max_domains(max);
    }

    /// Releases the domains not used for `idle_ms` (queried, or carrying
    /// traffic); each becomes a `ProxyIpsReleased` event.
    pub fn release_idle(&mut self, idle_ms: u64) {
        self.allocator.release_idle(idle_ms);
        self.queue_released();
    }

    /// Records traffic to these proxy IPs: uses of their domains.
    pub fn touch_proxy_ips(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        for ip in ips {
            self.allocator.touch_ip(ip);
        }
    }

    fn queue_released(&mut self) {
        for r in self.allocator.take_released() {
            self.events.push_released(r);
        }
    }

    /// Replaces the resources (configuration reload). Proxy IPs are kept: they
    /// belong to domains, not resources.
    pub fn set_resources(&mut self, resources: ResourceTable) {
        // Repeats held under the old resources are reported with their matches.
        self.release_held(true);
        self.resources = resources;
        self.events.forget_domains();
        self.repeats.reported.clear();
    }

    pub fn resources(&self) -> &ResourceTable {
        &self.resources
    }

    pub fn allocator(&self) -> &ProxyIpAllocator {
        &self.allocator
    }

    /// The domain a proxy IP belongs to and the resources that serve it now (the
    /// most specific pattern's), for routing traffic to a proxy IP.
    pub fn route_proxy_ip(&self, ip: IpAddr) -> Option<(&str, Vec<&Resource>)> {
        let domain = self.allocator.domain_of(ip)?;
        let labels: Vec<&[u8]> = domain.split('.').map(str::as_bytes).collect();
        Some((domain, self.resources.lookup(&labels).collect()))
    }

    /// The proxy IP table to persist (after an event with `newly_allocated`).
    pub fn export_proxy_ips(&self) -> ProxyIpTable {
        self.allocator.export()
    }

    pub fn stats(&self) -> StubStats {
        StubStats {
            events_dropped: self.events.dropped(),
            events_coalesced: self.events.coalesced(),
            events_repeats: self.stats.events_repeats,
            ..self.stats
        }
    }

    pub fn has_events(&self) -> bool {
        !self.events.is_empty() || !self.repeats.held.is_empty()
    }

    /// The events since the last call, in arrival order (repeats held back in
    /// an epoch that has ended since come last, as resource queries).
    pub fn take_events(&mut self) -> Vec<StubEvent> {
        self.release_held(false);
        self.events.take()
    }

    /// Reports the held repeats whose epoch has ended (or all of them): an
    /// event that may have changed their entries is ahead of them.
    fn release_held(&mut self, all: bool) {
        self.repeats.last_held.clear();
        if self.repeats.held.is_empty() {
            return;
        }
        let epoch = self.repeats.epoch;
        for (domain, query_type, held_in) in std::mem::take(&mut self.repeats.held) {
            let ended = all || held_in != Some(epoch);
            if !ended {
                self.repeats.last_held.push((domain, query_type));
            } else if !self.events.has_domain(&domain)
                && let Some(ips) = self.allocator.get(&domain).copied()
            {
                let labels: Vec<&[u8]> = domain.split('.').map(str::as_bytes).collect();
                let matched = self.resources.lookup_indices(&labels);
                let matches = self.matches_of(matched, &ips);
                drop(labels);
                self.report(ResourceQuery {
                    domain,
                    query_type,
                    matches,
                    newly_allocated: false,
                });
            }
        }
    }

    /// The epoch changed while the last batch was on its way to JavaScript
    /// (something may have overtaken it): the repeats it left out are reported
    /// in the next batch.
    pub fn report_last_held(&mut self) {
        let last = std::mem::take(&mut self.repeats.last_held);
        self.repeats
            .held
            .extend(last.into_iter().map(|(d, t)| (d, t, None)));
    }

    fn matches_of(&self, matched: &[usize], ips: &ProxyIps) -> Vec<ResourceMatch> {
        let resources = self.resources.resources();
        matched
            .iter()
            .map(|&i| {
                let r = &resources[i];
                ResourceMatch {
                    resource_id: r.id.clone(),
                    gateway_id: r.gateway_id.clone(),
                    proxy_ips: ips.for_stack(r.ip_stack),
                }
            })
            .collect()
    }

    fn report(&mut self, q: ResourceQuery) {
        if self.repeats.window_ms == 0 {
            self.events.push_resource_query(q);
            return;
        }
        let domain = q.domain.clone();
        if self.events.push_resource_query(q) {
            self.repeats.note_reported(&domain);
        }
    }

    /// Decides what to do with one query. On [`StubAction::Answer`] the answer is
    /// in `out` (which is cleared first in every case).
    pub fn handle_query(
        &mut self,
        query: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> StubAction {
        self.stats.queries += 1;
        out.clear();
        let Some(header) = RawHeader::read(query) else {
            self.stats.dropped_unreadable += 1;
            return StubAction::Drop(QueryDropReason::Unreadable);
        };
        if header.is_response() {
            self.stats.dropped_not_query += 1;
            return StubAction::Drop(QueryDropReason::NotAQuery);
        }
        if header.opcode() != u8::from(OpCode::Query) {
            return self.forward();
        }
        let Ok(req) = Message::from_vec(query) else {
            self.stats.formerr += 1;
            self.stats.answered += 1;
            self.events.note_query_seen();
            header.write_error(message::RCODE_FORMERR, out);
            return StubAction::Answer;
        };
        if req.queries.len() != 1 {
            self.stats.formerr += 1;
            self.events.note_query_seen();
            return self.reply(
                query,
                &req,
                false,
                FORMERR,
                Answers::default(),
                transport,
                out,
            );
        }
        if req.edns.as_ref().is_some_and(|e| e.version() > 0) {
            self.events.note_query_seen();
            return self.reply(
                query,
                &req,
                false,
                BADVERS,
                Answers::default(),
                transport,
                out,
            );
        }
        match self.decide(&req) {
            Decision::Forward => self.forward(),
            Decision::Reply { rcode, answers } => {
                self.reply(query, &req, true, rcode, answers, transport, out)
            }
        }
    }

    fn forward(&mut self) -> StubAction {
        self.stats.forwarded += 1;
        self.events.note_query_seen();
        StubAction::Forward
    }

    fn decide(&mut self, req: &Message) -> Decision {
        let q = &req.queries[0];
        if q.query_class != DNSClass::IN {
            return Decision::Forward;
        }
        let Some(domain) = hostname(&q.name) else {
            return Decision::Forward;
        };
        let labels: Vec<&[u8]> = domain.split('.').map(str::as_bytes).collect();

        if self.options.block_doh_canary && domain == DOH_CANARY {
            self.events.note_query_seen();
            return reply(NXDOMAIN, Answers::default());
        }
        if q.query_type == RecordType::PTR {
            return self.ptr(&labels);
        }
        let qtype = q.query_type;
        let wants_ips = matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::ANY);
        if !wants_ips && !matches!(qtype, RecordType::HTTPS | RecordType::SVCB) {
            return Decision::Forward;
        }
        let matched = self.resources.lookup_indices(&labels);
        if matched.is_empty() {
            return Decision::Forward;
        }
        let resources = self.resources.resources();
        let serves_v4 = matched.iter().any(|&i| resources[i].ip_stack.has_v4());
        let serves_v6 = matched.iter().any(|&i| resources[i].ip_stack.has_v6());
        self.stats.resource_queries += 1;

        let (ips, newly_allocated) = if wants_ips {
            let allocated = self.allocator.get_or_allocate(&domain);
            for r in self.allocator.take_released() {
                self.events.push_released(r);
            }
            match allocated {
                Ok((ips, new)) => (Some(ips), new),
                Err(e) => {
                    self.stats.proxy_ips_exhausted += 1;
                    self.events.push_exhausted(domain.clone(), e.to_string());
                    return reply(SERVFAIL, Answers::default());
                }
            }
        } else {
            // HTTPS/SVCB never allocate; they report the domain once it has addresses.
            (self.allocator.get(&domain).copied(), false)
        };

        let Some(ips) = ips else {
            self.events.note_query_seen();
            return reply(NOERROR, Answers::default());
        };
        if self.events.has_domain(&domain) {
            self.events.note_coalesced();
        } else if !newly_allocated && self.repeats.is_repeat(&domain) {
            self.stats.events_repeats += 1;
            self.events.note_query_seen();
            let epoch = self.repeats.epoch;
            self.repeats
                .held
                .push((domain, u16::from(qtype), Some(epoch)));
        } else {
            let matches = self.matches_of(matched, &ips);
            self.report(ResourceQuery {
                domain,
                query_type: u16::from(qtype),
                matches,
                newly_allocated,
            });
        }

        let answers = Answers {
            v4: (serves_v4 && matches!(qtype, RecordType::A | RecordType::ANY)).then_some(ips.v4),
            v6: (serves_v6 && matches!(qtype, RecordType::AAAA | RecordType::ANY))
                .then_some(ips.v6),
            ptr: None,
        };
        reply(NOERROR, answers)
    }

    fn ptr(&mut self, labels: &[&[u8]]) -> Decision {
        let ip = match message::reverse_ip(labels) {
            Some(ip @ IpAddr::V4(v4)) if is_proxy_v4(v4) => ip,
            Some(ip @ IpAddr::V6(v6)) if is_proxy_v6(v6) => ip,
            _ => return Decision::Forward,
        };
        self.events.note_query_seen();
        match self.allocator.domain_of(ip) {
            Some(domain) => reply(
                NOERROR,
                Answers {
                    ptr: Some(domain.to_owned()),
                    ..Answers::default()
                },
            ),
            // A proxy address nobody was given: only this stub could know it.
            None => reply(NXDOMAIN, Answers::default()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        query: &[u8],
        req: &Message,
        with_question: bool,
        mut rcode: u16,
        answers: Answers,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> StubAction {
        self.stats.answered += 1;
        let mut question = None;
        if with_question {
            question = message::question_section(query);
            if question.is_none() {
                // A compressed question name: legal in theory, never sent in practice.
                self.stats.formerr += 1;
                rcode = FORMERR;
            }
        }
        let mut records = [Rdata::A(Ipv4Addr::UNSPECIFIED); 2 * PROXY_IPS_PER_FAMILY];
        let mut n = 0;
        for a in answers.v4.iter().flatten() {
            records[n] = Rdata::A(*a);
            n += 1;
        }
        for a in answers.v6.iter().flatten() {
            records[n] = Rdata::Aaaa(*a);
            n += 1;
        }
        let ptr_record;
        let records: &[Rdata<'_>] = match &answers.ptr {
            Some(domain) => {
                ptr_record = [Rdata::Ptr(domain)];
                &ptr_record
            }
            None => &records[..n],
        };
        let reply = Reply {
            id: req.metadata.id,
            opcode: u8::from(req.metadata.op_code),
            recursion_desired: req.metadata.recursion_desired,
            checking_disabled: req.metadata.checking_disabled,
            rcode,
            question,
            answers: records,
            edns: req.edns.as_ref().map(|e| ReplyEdns {
                udp_payload: self.options.advertised_udp_payload,
                dnssec_ok: e.flags().dnssec_ok,
            }),
        };
        let limit = match transport {
            Transport::Udp => message::udp_limit(req.edns.as_ref()),
            Transport::Tcp => usize::from(u16::MAX),
        };
        if message::write_reply(&reply, limit, out) {
            self.stats.truncated += 1;
        }
        StubAction::Answer
    }
}

fn reply(rcode: u16, answers: Answers) -> Decision {
    Decision::Reply { rcode, answers }
}

/// The name as a lower-case hostname without trailing dot, if every label is made
/// of letters, digits, `-` and `_`. Anything else (spaces, dots or binary bytes
/// inside a label, the root) is never a resource name: such a string must not
/// reach the gateway, the logs or the state file.
fn hostname(name: &Name) -> Option<String> {
    let mut s = String::with_capacity(name.len());
    for label in name.iter() {
        if !s.is_empty() {
            s.push('.');
        }
        for &b in label {
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return None;
            }
            s.push(char::from(b.to_ascii_lowercase()));
        }
    }
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests;
