//! Stub resolver throughput and pattern matching at scale.
//!
//! `cargo bench -p dnsnat-core --bench dns_stub`
//!
//! - `dns_stub/*`: one query decided and answered per iteration (Throughput::Elements(1),
//!   so criterion's elem/s is queries per second on one core). Resource names
//!   cycle over 1,000 domains that already have proxy IPs (the steady state).
//! - `patterns_10k/*`: one name matched against 10,000 patterns, through the trie
//!   and, for scale, through a linear scan of the same patterns.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnsnat_core::dns::{
    IpStack, ProxyIpAllocator, Resource, ResourceTable, Stub, StubAction, StubOptions, Transport,
};
use dnsnat_core::pattern::{Pattern, PatternSet};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.set_edns(Edns::new());
    m.to_vec().unwrap()
}

fn pattern_text(i: usize) -> String {
    match i % 5 {
        0 => format!("host{i}.zone{}.corp.example", i % 100),
        1 => format!("*.svc{i}.zone{}.corp.example", i % 100),
        2 => format!("build-{i}-?.ci{}.example", i % 100),
        3 => format!("api-*-{i}.zone{}.corp.example", i % 100),
        _ => format!("**.team{i}.example"),
    }
}

fn resources(n: usize) -> ResourceTable {
    let mut rs: Vec<Resource> = (0..n)
        .map(|i| Resource {
            id: format!("r{i}"),
            gateway_id: format!("gw{}", i % 4),
            pattern: Pattern::parse(&pattern_text(i)).unwrap(),
            ip_stack: IpStack::Dual,
        })
        .collect();
    rs.push(Resource {
        id: "web".into(),
        gateway_id: "gw1".into(),
        pattern: Pattern::parse("*.apps.corp.example").unwrap(),
        ip_stack: IpStack::Dual,
    });
    ResourceTable::new(rs).unwrap()
}

fn bench_stub(c: &mut Criterion) {
    let mut stub = Stub::new(
        resources(10_000),
        ProxyIpAllocator::new(),
        StubOptions::default(),
    );
    let a: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            query(
                i as u16,
                &format!("app{i}.apps.corp.example."),
                RecordType::A,
            )
        })
        .collect();
    let aaaa: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            query(
                i as u16,
                &format!("app{i}.apps.corp.example."),
                RecordType::AAAA,
            )
        })
        .collect();
    let other: Vec<Vec<u8>> = (0..1000)
        .map(|i| query(i as u16, &format!("www{i}.example.com."), RecordType::A))
        .collect();
    let mut out = Vec::with_capacity(512);
    // Steady state: every resource domain already has its proxy IPs.
    for q in &a {
        assert_eq!(
            stub.handle_query(q, Transport::Udp, &mut out),
            StubAction::Answer
        );
    }
    stub.take_events();

    let mut g = c.benchmark_group("dns_stub");
    g.throughput(Throughput::Elements(1));
    for (name, qs) in [
        ("a_resource_udp", &a),
        ("aaaa_resource_udp", &aaaa),
        ("forward_decision", &other),
    ] {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                let q = &qs[i % qs.len()];
                i += 1;
                let action = stub.handle_query(black_box(q), Transport::Udp, &mut out);
                // The runtime drains events in batches; do it every 1,000 queries.
                if i.is_multiple_of(1000) {
                    black_box(stub.take_events());
                }
                black_box(action)
            })
        });
    }
    g.finish();
}

fn bench_patterns(c: &mut Criterion) {
    let patterns: Vec<Pattern> = (0..10_000)
        .map(|i| Pattern::parse(&pattern_text(i)).unwrap())
        .collect();
    let mut set = PatternSet::new();
    for (i, p) in patterns.iter().enumerate() {
        set.insert(p.clone(), i);
    }
    let names: Vec<String> = vec![
        "host5.zone5.corp.example".into(),
        "x.svc6.zone6.corp.example".into(),
        "build-7-z.ci7.example".into(),
        "api-blue-8.zone8.corp.example".into(),
        "a.b.c.team9.example".into(),
        "nothing.example.com".into(),
        "miss.zone3.corp.example".into(),
    ];
    let split: Vec<Vec<Vec<u8>>> = names
        .iter()
        .map(|n| n.split('.').map(|l| l.as_bytes().to_vec()).collect())
        .collect();

    let mut g = c.benchmark_group("patterns_10k");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("trie_best_match", |b| {
        b.iter(|| {
            let labels: Vec<&[u8]> = split[i % split.len()].iter().map(Vec::as_slice).collect();
            i += 1;
            black_box(set.best(black_box(&labels)))
        })
    });
    // The worst case for a plain trie: 10,000 globs under one zone.
    let mut globs = PatternSet::new();
    for i in 0..10_000 {
        globs.insert(
            Pattern::parse(&format!("web-*-{i}.corp.example")).unwrap(),
            i,
        );
    }
    let glob_names: Vec<Vec<Vec<u8>>> = ["web-blue-4711.corp.example", "nope.corp.example"]
        .iter()
        .map(|n| n.split('.').map(|l| l.as_bytes().to_vec()).collect())
        .collect();
    let mut i = 0usize;
    g.bench_function("trie_10k_globs_one_zone", |b| {
        b.iter(|| {
            let labels: Vec<&[u8]> = glob_names[i % glob_names.len()]
                .iter()
                .map(Vec::as_slice)
                .collect();
            i += 1;
            black_box(globs.best(black_box(&labels)))
        })
    });
    let mut i = 0usize;
    g.sample_size(20);
    g.bench_function("linear_scan_for_comparison", |b| {
        b.iter(|| {
            let name = &names[i % names.len()];
            i += 1;
            black_box(patterns.iter().filter(|p| p.matches(name)).count())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_stub, bench_patterns);
criterion_main!(benches);
