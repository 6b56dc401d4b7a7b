use std::net::{IpAddr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use proptest::prelude::*;

use super::*;
use crate::dns::message::reverse_name;
use crate::dns::{IpStack, ProxyIpEntry, Resource};
use crate::pattern::Pattern;

fn res(id: &str, gw: &str, pattern: &str, stack: IpStack) -> Resource {
    Resource {
        id: id.into(),
        gateway_id: gw.into(),
        pattern: Pattern::parse(pattern).unwrap(),
        ip_stack: stack,
    }
}

fn stub() -> Stub {
    let table = ResourceTable::new([
        res("web", "gw1", "*.corp.example", IpStack::Dual),
        res("v4", "gw1", "legacy.corp.example", IpStack::Ipv4),
        res("v6", "gw2", "*.v6.example", IpStack::Ipv6),
        res("deep", "gw2", "**.deep.example", IpStack::Dual),
    ])
    .unwrap();
    Stub::new(table, ProxyIpAllocator::new(), StubOptions::default())
}

struct Q {
    id: u16,
    name: &'static str,
    qtype: RecordType,
    class: DNSClass,
    rd: bool,
    cd: bool,
    edns: Option<Edns>,
}

fn q(name: &'static str, qtype: RecordType) -> Q {
    Q {
        id: 0x1234,
        name,
        qtype,
        class: DNSClass::IN,
        rd: true,
        cd: false,
        edns: None,
    }
}

impl Q {
    fn bytes(&self) -> Vec<u8> {
        let mut m = Message::new(self.id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = self.rd;
        m.metadata.checking_disabled = self.cd;
        let mut query = Query::query(Name::from_ascii(self.name).unwrap(), self.qtype);
        query.set_query_class(self.class);
        m.add_query(query);
        if let Some(e) = &self.edns {
            m.set_edns(e.clone());
        }
        m.to_vec().unwrap()
    }
}

fn ask(s: &mut Stub, query: &Q, transport: Transport) -> Option<Message> {
    let mut out = Vec::new();
    match s.handle_query(&query.bytes(), transport, &mut out) {
        StubAction::Answer => Some(Message::from_vec(&out).unwrap()),
        StubAction::Forward => {
            assert!(out.is_empty());
            None
        }
        StubAction::Drop(r) => panic!("dropped: {r:?}"),
    }
}

fn udp(s: &mut Stub, query: &Q) -> Option<Message> {
    ask(s, query, Transport::Udp)
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            other => panic!("unexpected record {other:?}"),
        })
        .collect()
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_for_a_resource_name_gets_four_proxy_ipv4_with_ttl_1_and_echoed_header() {
    let mut s = stub();
    let mut query = q("App.Corp.Example.", RecordType::A);
    query.cd = true;
    let m = udp(&mut s, &query).expect("answered locally");
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.op_code, OpCode::Query);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_desired);
    assert!(m.metadata.recursion_available);
    assert!(m.metadata.checking_disabled);
    assert!(!m.metadata.truncation);
    assert!(!m.metadata.authoritative);
    // The question comes back exactly, case included (0x20 randomisation).
    assert_eq!(m.queries.len(), 1);
    assert!(
        m.queries[0]
            .name
            .eq_case(&Name::from_ascii("App.Corp.Example.").unwrap())
    );
    assert_eq!(
        addrs(&m),
        ["100.96.0.1", "100.96.0.2", "100.96.0.3", "100.96.0.4"].map(v4)
    );
    assert!(m.answers.iter().all(|r| r.ttl == 1));
    assert!(
        m.answers
            .iter()
            .all(|r| r.name.eq_case(&query_name("App.Corp.Example.")))
    );
    assert!(
        m.edns.is_none(),
        "no OPT in the answer when the query had none"
    );
    assert_eq!(s.stats().answered, 1);
    assert_eq!(s.stats().resource_queries, 1);
}

fn query_name(n: &str) -> Name {
    Name::from_ascii(n).unwrap()
}

#[test]
fn aaaa_uses_the_same_allocation_as_a() {
    let mut s = stub();
    udp(&mut s, &q("app.corp.example.", RecordType::A)).unwrap();
    let m = udp(&mut s, &q("APP.corp.example.", RecordType::AAAA)).unwrap();
    let want: Vec<IpAddr> = (1..=4)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0x2021, 0x1111, 0x8000, 0, 0, 0, i)))
        .collect();
    assert_eq!(addrs(&m), want);
    assert_eq!(s.allocator().len(), 1);
    // A second domain continues the sequence.
    let m = udp(&mut s, &q("db.corp.example.", RecordType::A)).unwrap();
    assert_eq!(addrs(&m)[0], v4("100.96.0.5"));
}

#[test]
fn a_family_the_resource_does_not_serve_gets_an_empty_noerror() {
    let mut s = stub();
    let m = udp(&mut s, &q("legacy.corp.example.", RecordType::AAAA)).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.queries.len(), 1);
    let m = udp(&mut s, &q("legacy.corp.example.", RecordType::A)).unwrap();
    assert_eq!(addrs(&m).len(), 4);

    let m = udp(&mut s, &q("x.v6.example.", RecordType::A)).unwrap();
    assert!(m.answers.is_empty());
    let m = udp(&mut s, &q("x.v6.example.", RecordType::AAAA)).unwrap();
    assert_eq!(addrs(&m).len(), 4);
    assert!(addrs(&m).iter().all(IpAddr::is_ipv6));
}

#[test]
fn any_is_answered_with_the_proxy_ips_of_the_stack() {
    let mut s = stub();
    let m = udp(&mut s, &q("app.corp.example.", RecordType::ANY)).unwrap();
    let a = addrs(&m);
    assert_eq!(a.len(), 8);
    assert_eq!(a.iter().filter(|ip| ip.is_ipv4()).count(), 4);
    let m = udp(&mut s, &q("legacy.corp.example.", RecordType::ANY)).unwrap();
    assert!(addrs(&m).iter().all(IpAddr::is_ipv4));
}

#[test]
fn https_and_svcb_get_an_empty_noerror_without_allocating() {
    let mut s = stub();
    for t in [RecordType::HTTPS, RecordType::SVCB] {
        let m = udp(&mut s, &q("app.corp.example.", t)).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
    }
    assert!(s.allocator().is_empty());
    assert_eq!(s.take_events(), vec![StubEvent::QueriesSeen { count: 2 }]);
    // Once the domain has proxy IPs, HTTPS reports it like A does.
    udp(&mut s, &q("app.corp.example.", RecordType::A)).unwrap();
    s.take_events();
    udp(&mut s, &q("app.corp.example.", RecordType::HTTPS)).unwrap();
    let ev = s.take_events();
    assert!(
        matches!(&ev[..], [StubEvent::ResourceQuery(r)] if r.query_type == 65 && !r.newly_allocated),
        "{ev:?}"
    );
}

#[test]
fn ptr_for_a_proxy_ip_names_the_domain() {
    let mut s = stub();
    udp(&mut s, &q("app.corp.example.", RecordType::A)).unwrap();
    let ips = *s.allocator().get("app.corp.example").unwrap();
    for ip in [IpAddr::V4(ips.v4[2]), IpAddr::V6(ips.v6[3])] {
        let name: &'static str = Box::leak(format!("{}.", reverse_name(ip)).into_boxed_str());
        let m = udp(&mut s, &q(name, RecordType::PTR)).expect("answered locally");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        match &m.answers[..] {
            [r] => {
                assert_eq!(r.ttl, 1);
                match &r.data {
                    RData::PTR(p) => assert_eq!(p.0, query_name("app.corp.example.")),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    }
    // A proxy IP never handed out: NXDOMAIN, locally.
    let m = udp(&mut s, &q("9.9.96.100.in-addr.arpa.", RecordType::PTR)).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Anything else goes upstream.
    assert!(udp(&mut s, &q("1.1.168.192.in-addr.arpa.", RecordType::PTR)).is_none());
    assert!(udp(&mut s, &q("96.100.in-addr.arpa.", RecordType::PTR)).is_none());
}

#[test]
fn non_resource_names_and_other_types_are_forwarded() {
    let mut s = stub();
    for query in [
        q("example.com.", RecordType::A),
        q("corp.example.com.", RecordType::AAAA),
        q("app.corp.example.", RecordType::MX),
        q("app.corp.example.", RecordType::TXT),
        q("_ldap._tcp.corp.example.", RecordType::SRV),
        q("app.corp.example.", RecordType::CNAME),
    ] {
        assert!(udp(&mut s, &query).is_none(), "{:?}", query.qtype);
    }
    let mut chaos = q("app.corp.example.", RecordType::A);
    chaos.class = DNSClass::CH;
    assert!(udp(&mut s, &chaos).is_none());
    assert_eq!(s.stats().forwarded, 7);
    assert!(s.allocator().is_empty());
    assert_eq!(s.take_events(), vec![StubEvent::QueriesSeen { count: 7 }]);
}

#[test]
fn non_query_opcodes_are_forwarded() {
    let mut s = stub();
    let mut bytes = q("app.corp.example.", RecordType::A).bytes();
    bytes[2] = (bytes[2] & !0x78) | (4 << 3); // NOTIFY
    let mut out = Vec::new();
    assert_eq!(
        s.handle_query(&bytes, Transport::Udp, &mut out),
        StubAction::Forward
    );
}

#[test]
fn names_that_are_not_hostnames_never_match() {
    let mut s = stub();
    // `*.corp.example` would match the label "a b" as a glob; it is still forwarded.
    let name = Name::from_labels(vec![&b"a b"[..], b"corp", b"example"]).unwrap();
    let mut m = Message::new(1, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name, RecordType::A));
    let mut out = Vec::new();
    assert_eq!(
        s.handle_query(&m.to_vec().unwrap(), Transport::Udp, &mut out),
        StubAction::Forward
    );
}

#[test]
fn the_doh_canary_gets_nxdomain_unless_disabled() {
    let mut s = stub();
    let m = udp(&mut s, &q("use-application-dns.net.", RecordType::A)).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let mut s = Stub::new(
        ResourceTable::default(),
        ProxyIpAllocator::new(),
        StubOptions {
            block_doh_canary: false,
            ..StubOptions::default()
        },
    );
    assert!(udp(&mut s, &q("use-application-dns.net.", RecordType::A)).is_none());
}

#[test]
fn edns_is_kept_with_our_payload_size_and_the_do_bit() {
    let mut s = stub();
    let mut query = q("app.corp.example.", RecordType::A);
    let mut e = Edns::new();
    e.set_max_payload(4096);
    e.set_dnssec_ok(true);
    query.edns = Some(e);
    let m = udp(&mut s, &query).unwrap();
    let edns = m.edns.clone().expect("OPT in the answer");
    assert_eq!(edns.max_payload(), 1232);
    assert!(edns.flags().dnssec_ok);
    assert_eq!(edns.version(), 0);
    assert_eq!(addrs(&m).len(), 4);

    let mut query = q("app.corp.example.", RecordType::A);
    let mut e = Edns::new();
    e.set_version(1);
    query.edns = Some(e);
    let m = udp(&mut s, &query).unwrap();
    // BADVERS is 16, which hickory decodes under its other name, BADSIG.
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert!(m.answers.is_empty());
    assert_eq!(m.edns.unwrap().version(), 0);
}

#[test]
fn malformed_queries_get_formerr_or_a_counted_drop() {
    let mut s = stub();
    let mut out = Vec::new();
    // No header: dropped.
    for short in [&[][..], &[1, 2, 3], &[0; 11]] {
        assert_eq!(
            s.handle_query(short, Transport::Udp, &mut out),
            StubAction::Drop(QueryDropReason::Unreadable)
        );
    }
    assert_eq!(s.stats().dropped_unreadable, 3);
    // A header and garbage: FORMERR with the id, opcode and RD echoed.
    let garbage = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xfe];
    assert_eq!(
        s.handle_query(&garbage, Transport::Udp, &mut out),
        StubAction::Answer
    );
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.id, 0xabcd);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert!(m.metadata.recursion_desired);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    // Zero or two questions: FORMERR.
    let mut zero = Message::new(5, MessageType::Query, OpCode::Query);
    let bytes = zero.to_vec().unwrap();
    assert_eq!(
        s.handle_query(&bytes, Transport::Udp, &mut out),
        StubAction::Answer
    );
    assert_eq!(
        Message::from_vec(&out).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
    zero.add_query(Query::query(query_name("a.corp.example."), RecordType::A));
    zero.add_query(Query::query(query_name("b.corp.example."), RecordType::A));
    let bytes = zero.to_vec().unwrap();
    assert_eq!(
        s.handle_query(&bytes, Transport::Udp, &mut out),
        StubAction::Answer
    );
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, 5);
    assert!(
        s.allocator().is_empty(),
        "no allocation for a rejected query"
    );
    assert_eq!(s.stats().formerr, 3);
    // A response sent to the stub: dropped, never answered.
    let mut resp = q("app.corp.example.", RecordType::A).bytes();
    resp[2] |= 0x80;
    assert_eq!(
        s.handle_query(&resp, Transport::Udp, &mut out),
        StubAction::Drop(QueryDropReason::NotAQuery)
    );
    assert!(out.is_empty());
    assert_eq!(s.stats().dropped_not_query, 1);
}

#[test]
fn tcp_gives_the_same_answers_as_udp() {
    let mut s = stub();
    let mut query = q("app.corp.example.", RecordType::ANY);
    query.edns = Some(Edns::new());
    let mut u = Vec::new();
    let mut t = Vec::new();
    assert_eq!(
        s.handle_query(&query.bytes(), Transport::Udp, &mut u),
        StubAction::Answer
    );
    assert_eq!(
        s.handle_query(&query.bytes(), Transport::Tcp, &mut t),
        StubAction::Answer
    );
    assert_eq!(u, t);

    // Several framed queries on one connection, split at odd places.
    let mut wire = Vec::new();
    for name in ["a.corp.example.", "b.corp.example.", "example.com."] {
        crate::dns::encode_frame(&q(name, RecordType::A).bytes(), &mut wire).unwrap();
    }
    let mut dec = crate::dns::TcpFrameDecoder::new();
    let mut actions = Vec::new();
    for chunk in wire.chunks(7) {
        dec.push(chunk);
        while let Some(frame) = dec.next_frame() {
            let frame = frame.to_vec();
            let mut out = Vec::new();
            actions.push(s.handle_query(&frame, Transport::Tcp, &mut out));
        }
    }
    assert_eq!(
        actions,
        [StubAction::Answer, StubAction::Answer, StubAction::Forward]
    );
}

#[test]
fn the_largest_possible_answer_fits_classic_udp() {
    // 253-character name, ANY, dual stack: 8 records with compressed owner names.
    let label = "a".repeat(61);
    let long: &'static str = Box::leak(
        format!("{label}.{label}.{label}.{}.deep.example.", "b".repeat(52)).into_boxed_str(),
    );
    let mut s = stub();
    let m = udp(&mut s, &q(long, RecordType::ANY)).unwrap();
    assert_eq!(addrs(&m).len(), 8);
    assert!(!m.metadata.truncation);
    assert_eq!(s.stats().truncated, 0);
}

#[test]
fn events_carry_domain_matches_and_proxy_ips_per_stack() {
    let table = ResourceTable::new([
        res("web", "gw1", "*.corp.example", IpStack::Dual),
        res("web-v4", "gw2", "*.corp.example", IpStack::Ipv4),
        res("broad", "gw3", "**.corp.example", IpStack::Dual),
    ])
    .unwrap();
    let mut s = Stub::new(table, ProxyIpAllocator::new(), StubOptions::default());
    udp(&mut s, &q("example.com.", RecordType::A));
    udp(&mut s, &q("App.corp.example.", RecordType::AAAA)).unwrap();
    udp(&mut s, &q("app.corp.example.", RecordType::A)).unwrap();
    let events = s.take_events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], StubEvent::QueriesSeen { count: 1 });
    let StubEvent::ResourceQuery(rq) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(rq.domain, "app.corp.example");
    assert_eq!(rq.query_type, 28);
    assert!(rq.newly_allocated);
    let ips = *s.allocator().get("app.corp.example").unwrap();
    assert_eq!(
        rq.matches,
        vec![
            ResourceMatch {
                resource_id: "web".into(),
                gateway_id: "gw1".into(),
                proxy_ips: ips.for_stack(IpStack::Dual),
            },
            ResourceMatch {
                resource_id: "web-v4".into(),
                gateway_id: "gw2".into(),
                proxy_ips: ips.for_stack(IpStack::Ipv4),
            },
        ],
        "the broader `**` resource is shadowed"
    );
    assert_eq!(s.stats().events_coalesced, 1);
    // Next batch: the same domain again, no longer newly allocated.
    udp(&mut s, &q("app.corp.example.", RecordType::A)).unwrap();
    let events = s.take_events();
    assert!(matches!(&events[..], [StubEvent::ResourceQuery(r)] if !r.newly_allocated));
    assert!(!s.has_events());
}

#[test]
fn a_seeded_table_answers_the_persisted_addresses() {
    let mut first = stub();
    udp(&mut first, &q("x.corp.example.", RecordType::A)).unwrap();
    udp(&mut first, &q("y.corp.example.", RecordType::A)).unwrap();
    let table = first.export_proxy_ips();
    assert_eq!(
        table
            .entries
            .iter()
            .map(|e| e.domain.as_str())
            .collect::<Vec<_>>(),
        ["x.corp.example", "y.corp.example"]
    );
    let (alloc, rejected) = ProxyIpAllocator::seed(&table);
    assert!(rejected.is_empty());
    let mut second = Stub::new(stub().resources, alloc, StubOptions::default());
    let m = udp(&mut second, &q("y.corp.example.", RecordType::A)).unwrap();
    let ProxyIpEntry { ips, .. } = &table.entries[1];
    assert_eq!(addrs(&m), ips.v4.map(IpAddr::V4));
    let ev = second.take_events();
    assert!(matches!(&ev[..], [StubEvent::ResourceQuery(r)] if !r.newly_allocated));
}

#[test]
fn proxy_ips_route_to_their_domain_and_current_resources() {
    let mut s = stub();
    udp(&mut s, &q("legacy.corp.example.", RecordType::A)).unwrap();
    let ips = *s.allocator().get("legacy.corp.example").unwrap();
    let (domain, rs) = s.route_proxy_ip(IpAddr::V6(ips.v6[1])).unwrap();
    assert_eq!(domain, "legacy.corp.example");
    assert_eq!(rs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["v4"]);
    assert!(s.route_proxy_ip(v4("100.96.1.1")).is_none());
}

#[test]
fn replacing_resources_keeps_proxy_ips() {
    let mut s = stub();
    let before = addrs(&udp(&mut s, &q("app.corp.example.", RecordType::A)).unwrap());
    s.set_resources(
        ResourceTable::new([res("new", "gw9", "app.corp.example", IpStack::Dual)]).unwrap(),
    );
    assert!(udp(&mut s, &q("other.corp.example.", RecordType::A)).is_none());
    let after = addrs(&udp(&mut s, &q("app.corp.example.", RecordType::A)).unwrap());
    assert_eq!(before, after);
    // Both queries fell in one batch; the second reports the new resource.
    let ids: Vec<Vec<String>> = s
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            StubEvent::ResourceQuery(r) => {
                Some(r.matches.into_iter().map(|m| m.resource_id).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(ids, [vec!["web".to_string()], vec!["new".to_string()]]);
}

/// The kinds of a batch: `R(domain)` for a resource query, `S(count)` for seen queries.
fn kinds(events: &[StubEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            StubEvent::ResourceQuery(r) => format!("R({})", r.domain),
            StubEvent::QueriesSeen { count } => format!("S({count})"),
            StubEvent::ProxyIpsExhausted { domain, .. } => format!("X({domain})"),
            StubEvent::ProxyIpsReleased { released } => format!(
                "F({})",
                released
                    .iter()
                    .map(|r| r.domain.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        })
        .collect()
}

fn at(s: &mut Stub, now_ms: u64, epoch: u64, name: &'static str) {
    s.set_clock(now_ms, epoch);
    udp(s, &q(name, RecordType::A)).unwrap();
}

#[test]
fn repeats_in_one_epoch_and_window_are_only_counted() {
    let mut s = stub();
    s.set_repeat_window(1000);
    at(&mut s, 0, 0, "app.corp.example.");
    assert_eq!(kinds(&s.take_events()), ["R(app.corp.example)"]);
    // Same epoch, within the window: a seen query, answered all the same.
    at(&mut s, 10, 0, "app.corp.example.");
    at(&mut s, 20, 0, "db.corp.example.");
    at(&mut s, 30, 0, "app.corp.example.");
    assert_eq!(
        kinds(&s.take_events()),
        ["S(1)", "R(db.corp.example)", "S(1)"]
    );
    assert_eq!(s.stats().events_repeats, 2);
    // A new epoch (a status, a command, a peer event): reported again.
    at(&mut s, 40, 1, "app.corp.example.");
    assert_eq!(kinds(&s.take_events()), ["R(app.corp.example)"]);
    // The window counts from the last report.
    at(&mut s, 1039, 1, "app.corp.example.");
    assert_eq!(kinds(&s.take_events()), ["S(1)"]);
    at(&mut s, 1040, 1, "app.corp.example.");
    assert_eq!(kinds(&s.take_events()), ["R(app.corp.example)"]);
    // Other types that report the domain (AAAA, HTTPS) are repeats too.
    s.set_clock(1041, 1);
    udp(&mut s, &q("app.corp.example.", RecordType::AAAA)).unwrap();
    udp(&mut s, &q("app.corp.example.", RecordType::HTTPS)).unwrap();
    assert_eq!(kinds(&s.take_events()), ["S(2)"]);
}

#[test]
fn a_repeat_is_reported_when_the_epoch_ends_before_its_batch_is_taken() {
    let mut s = stub();
    s.set_repeat_window(1000);
    at(&mut s, 0, 0, "app.corp.example.");
    s.take_events();
    s.set_clock(5, 0);
    udp(&mut s, &q("app.corp.example.", RecordType::AAAA)).unwrap();
    // A control message went to JavaScript after the query but before the
    // batch: the query reaches JavaScript after it, so it is reported, with
    // its matches and type.
    s.set_clock(6, 1);
    let events = s.take_events();
    assert_eq!(kinds(&events), ["S(1)", "R(app.corp.example)"]);
    let StubEvent::ResourceQuery(rq) = &events[1] else {
        unreachable!()
    };
    assert_eq!(rq.query_type, 28);
    assert!(!rq.newly_allocated);
    let ips = *s.allocator().get("app.corp.example").unwrap();
    assert_eq!(
        rq.matches,
        vec![ResourceMatch {
            resource_id: "web".into(),
            gateway_id: "gw1".into(),
            proxy_ips: ips.for_stack(IpStack::Dual),
        }]
    );
    // …and counts as the new report of that epoch.
    at(&mut s, 7, 1, "app.corp.example.");
    assert_eq!(kinds(&s.take_events()), ["S(1)"]);
    // The epoch changed while that batch was on its way: what it left out is
    // reported in the next one, once.
    s.report_last_held();
    assert!(s.has_events());
    assert_eq!(kinds(&s.take_events()), ["R(app.corp.example)"]);
    s.report_last_held();
    assert!(!s.has_events());
}

#[test]
fn new_resources_end_every_repeat_and_release_held_ones_with_the_old_matches() {
    let mut s = stub();
    s.set_repeat_window(1000);
    at(&mut s, 0, 0, "app.corp.example.");
    s.take_events();
    at(&mut s, 1, 0, "app.corp.example.");
    s.set_resources(
        ResourceTable::new([res("new", "gw9", "app.corp.example", IpStack::Dual)]).unwrap(),
    );
    at(&mut s, 2, 0, "app.corp.example.");
    let ids: Vec<Vec<String>> = s
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            StubEvent::ResourceQuery(r) => {
                Some(r.matches.into_iter().map(|m| m.resource_id).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(ids, [vec!["web".to_string()], vec!["new".to_string()]]);
}

#[test]
fn a_dropped_report_is_not_remembered_and_no_window_means_every_query() {
    let mut s = Stub::new(
        stub().resources,
        ProxyIpAllocator::new(),
        StubOptions {
            event_capacity: 1,
            ..StubOptions::default()
        },
    );
    s.set_repeat_window(1000);
    at(&mut s, 0, 0, "app.corp.example.");
    s.take_events();
    udp(&mut s, &q("example.com.", RecordType::A));
    at(&mut s, 1, 0, "db.corp.example."); // dropped: the queue is full
    s.take_events();
    at(&mut s, 2, 0, "db.corp.example.");
    assert_eq!(kinds(&s.take_events()), ["R(db.corp.example)"]);

    let mut s = stub();
    for t in 0..3 {
        at(&mut s, t, 0, "app.corp.example.");
        assert_eq!(kinds(&s.take_events()), ["R(app.corp.example)"]);
    }
    assert_eq!(s.stats().events_repeats, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), tcp in any::<bool>()) {
        let mut s = stub();
        let mut out = Vec::new();
        let t = if tcp { Transport::Tcp } else { Transport::Udp };
        match s.handle_query(&bytes, t, &mut out) {
            StubAction::Answer => {
                // Every answer echoes the id and is a response.
                prop_assert!(out.len() >= 12);
                prop_assert_eq!(&out[..2], &bytes[..2]);
                prop_assert!(out[2] & 0x80 != 0);
                // The hand encoder's output is a valid message.
                prop_assert!(Message::from_vec(&out).is_ok());
                if !tcp {
                    prop_assert!(out.len() <= 65_535);
                }
            }
            StubAction::Forward => prop_assert!(out.is_empty()),
            StubAction::Drop(_) => prop_assert!(out.is_empty()),
        }
    }

    #[test]
    fn mutated_valid_queries_never_panic(
        which in 0usize..6,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let names = ["app.corp.example.", "x.v6.example.", "a.b.deep.example.",
                     "1.0.96.100.in-addr.arpa.", "example.com.", "legacy.corp.example."];
        let types = [RecordType::A, RecordType::AAAA, RecordType::ANY, RecordType::PTR,
                     RecordType::HTTPS, RecordType::A];
        let mut query = q(names[which], types[which]);
        query.edns = Some(Edns::new());
        let mut bytes = query.bytes();
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        let cut = cut.index(bytes.len() + 1);
        bytes.truncate(cut);
        let mut s = stub();
        let mut out = Vec::new();
        if s.handle_query(&bytes, Transport::Udp, &mut out) == StubAction::Answer {
            prop_assert!(out.len() <= 4096);
            prop_assert_eq!(&out[..2], &bytes[..2]);
            let m = Message::from_vec(&out);
            prop_assert!(m.is_ok(), "{:?}", m);
        }
    }
}

#[test]
fn past_the_name_limit_the_least_recently_used_name_gives_its_addresses_up() {
    let mut s = stub();
    s.set_max_domains(2);
    at(&mut s, 0, 0, "a.corp.example.");
    at(&mut s, 10, 0, "b.corp.example.");
    // `a` is used again, so `b` is now the least recently used.
    at(&mut s, 20, 0, "a.corp.example.");
    at(&mut s, 30, 0, "c.corp.example.");
    assert_eq!(
        kinds(&s.take_events()),
        [
            "R(a.corp.example)",
            "R(b.corp.example)",
            "F(b.corp.example)",
            "R(c.corp.example)"
        ]
    );
    assert!(s.allocator().get("b.corp.example").is_none());
    assert!(s.allocator().get("a.corp.example").is_some());
    // A name given up and asked again gets addresses again, reported as new.
    at(&mut s, 40, 0, "b.corp.example.");
    let events = s.take_events();
    assert_eq!(kinds(&events), ["F(a.corp.example)", "R(b.corp.example)"]);
    let StubEvent::ResourceQuery(q) = &events[1] else {
        unreachable!()
    };
    assert!(q.newly_allocated);
    assert_eq!(s.allocator().stats().evicted, 2);
}

#[test]
fn names_idle_past_the_idle_time_are_released_and_traffic_counts_as_use() {
    let mut s = stub();
    at(&mut s, 0, 0, "a.corp.example.");
    at(&mut s, 0, 0, "b.corp.example.");
    let b_ip = s.allocator().get("b.corp.example").unwrap().v4[2];
    s.take_events();
    // Traffic to one of b's addresses at 500 ms; nothing for a.
    s.set_clock(500, 0);
    s.touch_proxy_ips([IpAddr::V4(b_ip)]);
    s.set_clock(1_200, 0);
    s.release_idle(1_000);
    assert_eq!(kinds(&s.take_events()), ["F(a.corp.example)"]);
    s.set_clock(1_600, 0);
    s.release_idle(1_000);
    assert_eq!(kinds(&s.take_events()), ["F(b.corp.example)"]);
    assert!(s.allocator().is_empty());
    assert_eq!(s.allocator().stats().expired, 2);
}
