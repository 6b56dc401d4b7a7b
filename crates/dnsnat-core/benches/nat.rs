//! NAT translation throughput against the physical floor of copying the bytes.
//!
//! `cargo bench -p dnsnat-core --bench nat`
//!
//! Every iteration copies one packet from a template into the working buffer
//! (translation is in place, so each packet must start fresh) and translates
//! it; `memcpy/<sessions>` does only the copy, from the same set of
//! templates as the translations with that many sessions. Throughput is one element per
//! iteration, so criterion's elem/s is packets per second on one core, and
//! `translate / memcpy` time is the cost of NAT relative to touching the
//! bytes at all.
//!
//! Sessions: 10 or 100,000 live sessions in one client's table, all IPv4,
//! created before measuring. Packets cycle over up to 4,096 sessions spread
//! across the table, so the 100k case pays for cache misses in the maps the
//! way a busy gateway would, and the templates' bytes are the same for the
//! copy baseline.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dnsnat_core::nat::{ClientNat, Mapping, NatConfig, Timestamp, Verdict};
use dnsnat_core::packet::build;

const CLIENT: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
/// Sessions per proxy IP (ports 1..=PER_PROXY); more proxies for more sessions.
const PER_PROXY: usize = 50_000;
const MAX_TEMPLATES: usize = 4_096;

#[derive(Clone, Copy, Debug)]
enum Proto {
    Tcp,
    Udp,
}

fn proxy(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(100, 96, 1, i as u8))
}

fn real(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 1, i as u8))
}

fn session_addr(s: usize) -> (usize, u16) {
    (s / PER_PROXY, (s % PER_PROXY + 1) as u16)
}

/// A packet of exactly `size` bytes between the two endpoints.
fn packet(proto: Proto, src: SocketAddr, dst: SocketAddr, size: usize) -> Vec<u8> {
    let p = match proto {
        Proto::Tcp => build::tcp(src, dst, 0x10, size - 40),
        Proto::Udp => build::udp(src, dst, size - 28, true),
    };
    assert_eq!(p.len(), size);
    p
}

struct Setup {
    nat: ClientNat,
    outbound: Vec<Vec<u8>>,
    inbound: Vec<Vec<u8>>,
}

fn setup(proto: Proto, sessions: usize, size: usize) -> Setup {
    let config = NatConfig {
        max_sessions: sessions + 1,
        ..NatConfig::default()
    };
    let mut nat = ClientNat::new(config, &[IpAddr::V4(CLIENT)]);
    let t0 = Timestamp::from_secs(1);
    for i in 0..sessions.div_ceil(PER_PROXY) {
        nat.set_mapping(proxy(i), Mapping::to(real(i)), t0).unwrap();
    }
    let mut buf = Vec::new();
    for s in 0..sessions {
        let (i, port) = session_addr(s);
        buf.clear();
        buf.extend_from_slice(&packet(
            proto,
            SocketAddr::new(IpAddr::V4(CLIENT), port),
            SocketAddr::new(proxy(i), 443),
            64,
        ));
        assert_eq!(nat.translate_outbound(&mut buf, t0), Verdict::Forward);
    }
    assert_eq!(nat.session_count(), sessions);
    let templates = sessions.min(MAX_TEMPLATES);
    let stride = sessions / templates;
    let mut outbound = Vec::new();
    let mut inbound = Vec::new();
    for k in 0..templates {
        let (i, port) = session_addr(k * stride);
        let client = SocketAddr::new(IpAddr::V4(CLIENT), port);
        outbound.push(packet(proto, client, SocketAddr::new(proxy(i), 443), size));
        // Each proxy has its own real IP, so the client's port was kept.
        inbound.push(packet(proto, SocketAddr::new(real(i), 443), client, size));
    }
    Setup {
        nat,
        outbound,
        inbound,
    }
}

fn bench_nat(c: &mut Criterion) {
    let now = Timestamp::from_secs(2);
    for size in [64usize, 1400] {
        let mut group = c.benchmark_group(format!("nat_{size}B"));
        group.throughput(Throughput::Elements(1));
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        group.sample_size(30);

        // The floor: copying the same templates, nothing else.
        let mut buf = vec![0u8; size];
        for sessions in [10usize, 100_000] {
            let s = setup(Proto::Udp, sessions, size);
            let mut k = 0;
            group.bench_function(BenchmarkId::new("memcpy", sessions), |b| {
                b.iter(|| {
                    let t = &s.outbound[k % s.outbound.len()];
                    k += 1;
                    buf.copy_from_slice(t);
                    black_box(&mut buf);
                })
            });
        }

        for proto in [Proto::Tcp, Proto::Udp] {
            for sessions in [10usize, 100_000] {
                let mut s = setup(proto, sessions, size);
                let id = |dir: &str| BenchmarkId::new(format!("{proto:?}_{dir}"), sessions);
                let mut k = 0;
                group.bench_function(id("out"), |b| {
                    b.iter(|| {
                        let t = &s.outbound[k % s.outbound.len()];
                        k += 1;
                        buf.copy_from_slice(t);
                        black_box(s.nat.translate_outbound(&mut buf, now))
                    })
                });
                let mut k = 0;
                group.bench_function(id("in"), |b| {
                    b.iter(|| {
                        let t = &s.inbound[k % s.inbound.len()];
                        k += 1;
                        buf.copy_from_slice(t);
                        black_box(s.nat.translate_inbound(&mut buf, now))
                    })
                });
                // The benchmark measured translations, not drops.
                buf.copy_from_slice(&s.outbound[0]);
                assert_eq!(s.nat.translate_outbound(&mut buf, now), Verdict::Forward);
                buf.copy_from_slice(&s.inbound[0]);
                assert_eq!(s.nat.translate_inbound(&mut buf, now), Verdict::Forward);
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench_nat);
criterion_main!(benches);
