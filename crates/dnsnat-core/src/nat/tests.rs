//! Behaviour of `ClientNat`, one test per rule, then property tests.
//!
//! Expected packets are built from scratch with `packet::build` (full
//! checksums) and compared byte for byte with what the incremental
//! translation produced, so a wrong offset, a missed checksum or a wrong port
//! shows up as a difference, not only as an invalid checksum.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::packet::build::{self, verify_checksums};
use crate::packet::checksum::get_u16;
use crate::packet::icmp::{v4, v6};
use crate::packet::ip::IpInfo;
use crate::packet::tcp;

const CLIENT4: &str = "100.64.0.2";
const CLIENT6: &str = "fd00:2021:1111::2";
const REAL4: &str = "198.18.0.10";
const REAL6: &str = "2001:db8::10";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

fn proxy(v4: bool, n: u8) -> IpAddr {
    if v4 {
        IpAddr::from([100, 96, 0, n])
    } else {
        ip(&format!("fd00:2021:1111:8000::{n:x}"))
    }
}

fn client(v4: bool) -> IpAddr {
    ip(if v4 { CLIENT4 } else { CLIENT6 })
}

fn real(v4: bool) -> IpAddr {
    ip(if v4 { REAL4 } else { REAL6 })
}

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// A NAT for one dual-stack client with proxy 1 of each family mapped.
fn nat() -> ClientNat {
    nat_with(NatConfig::default())
}

fn nat_with(config: NatConfig) -> ClientNat {
    let mut n = ClientNat::new(config, &[ip(CLIENT4), ip(CLIENT6)]);
    for v4 in [true, false] {
        n.set_mapping(proxy(v4, 1), Mapping::to(real(v4)), t(0))
            .unwrap();
    }
    n
}

/// Equal, or differing only in one transport checksum that is 0x0000 in one
/// and 0xffff in the other (the two encodings of zero; RFC 1624 §3).
fn assert_same_packet(got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    assert_eq!(
        got.len(),
        want.len(),
        "length\n got {got:x?}\nwant {want:x?}"
    );
    let diffs: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    let info = IpInfo::parse(want).unwrap();
    let ok = diffs.len() == 2 && diffs[1] == diffs[0] + 1 && diffs[0] >= info.l4_offset && {
        let (a, b) = (get_u16(got, diffs[0]), get_u16(want, diffs[0]));
        (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
    };
    assert!(
        ok,
        "packets differ at {diffs:?}\n got {got:x?}\nwant {want:x?}"
    );
}

fn forward_out(n: &mut ClientNat, p: &mut [u8], now: Timestamp) {
    assert_eq!(n.translate_outbound(p, now), Verdict::Forward);
    assert_eq!(verify_checksums(p), Ok(()));
}

fn forward_in(n: &mut ClientNat, p: &mut [u8], now: Timestamp) {
    assert_eq!(n.translate_inbound(p, now), Verdict::Forward);
    assert_eq!(verify_checksums(p), Ok(()));
}

// ---------------------------------------------------------------- translation

#[test]
fn tcp_both_families_round_trip_byte_for_byte() {
    for v4 in [true, false] {
        let mut n = nat();
        let (c, p, r) = (client(v4), proxy(v4, 1), real(v4));
        let mut pkt = build::tcp(sa(c, 40000), sa(p, 443), tcp::SYN, 0);
        forward_out(&mut n, &mut pkt, t(1));
        assert_same_packet(&pkt, &build::tcp(sa(c, 40000), sa(r, 443), tcp::SYN, 0));

        let mut reply = build::tcp(sa(r, 443), sa(c, 40000), tcp::SYN | tcp::ACK, 100);
        forward_in(&mut n, &mut reply, t(1));
        assert_same_packet(
            &reply,
            &build::tcp(sa(p, 443), sa(c, 40000), tcp::SYN | tcp::ACK, 100),
        );
        assert_eq!(n.session_count(), 1);
    }
}

#[test]
fn udp_with_and_without_checksum() {
    for (v4, with_ck) in [(true, true), (true, false), (false, true)] {
        let mut n = nat();
        let (c, p, r) = (client(v4), proxy(v4, 1), real(v4));
        let mut pkt = build::udp(sa(c, 5353), sa(p, 53), 40, with_ck);
        forward_out(&mut n, &mut pkt, t(1));
        assert_same_packet(&pkt, &build::udp(sa(c, 5353), sa(r, 53), 40, with_ck));
        let mut reply = build::udp(sa(r, 53), sa(c, 5353), 200, with_ck);
        forward_in(&mut n, &mut reply, t(2));
        assert_same_packet(&reply, &build::udp(sa(p, 53), sa(c, 5353), 200, with_ck));
        if !with_ck {
            let info = IpInfo::parse(&reply).unwrap();
            assert_eq!(
                get_u16(&reply, info.l4_offset + 6),
                0,
                "zero UDP checksum stays zero"
            );
        }
    }
}

#[test]
fn icmp_echo_both_families() {
    for v4 in [true, false] {
        let mut n = nat();
        let (c, p, r) = (client(v4), proxy(v4, 1), real(v4));
        let mut ping = build::icmp_echo(c, p, true, 77, 1, 56);
        forward_out(&mut n, &mut ping, t(1));
        assert_same_packet(&ping, &build::icmp_echo(c, r, true, 77, 1, 56));
        let mut pong = build::icmp_echo(r, c, false, 77, 1, 56);
        forward_in(&mut n, &mut pong, t(1));
        assert_same_packet(&pong, &build::icmp_echo(p, c, false, 77, 1, 56));
    }
}

#[test]
fn inbound_reply_from_another_real_ip_or_port_is_refused() {
    let mut n = nat();
    let mut pkt = build::udp(sa(ip(CLIENT4), 5000), sa(proxy(true, 1), 53), 1, true);
    forward_out(&mut n, &mut pkt, t(1));
    let mut other = build::udp(sa(ip("198.18.0.99"), 53), sa(ip(CLIENT4), 5000), 1, true);
    assert_eq!(
        n.translate_inbound(&mut other, t(1)),
        Verdict::Drop(DropReason::NoSession)
    );
    let mut other_port = build::udp(sa(real(true), 53), sa(ip(CLIENT4), 5001), 1, true);
    assert_eq!(
        n.translate_inbound(&mut other_port, t(1)),
        Verdict::Drop(DropReason::NoSession)
    );
    // Endpoint-independent: the same real IP from another source port is fine.
    let mut from_other_sport = build::udp(sa(real(true), 5353), sa(ip(CLIENT4), 5000), 1, true);
    forward_in(&mut n, &mut from_other_sport, t(1));
}

// --------------------------------------------------------- sharing a real IP

#[test]
fn two_clients_and_two_domains_share_one_real_ip() {
    let r = real(true);
    let (alice_ip, bob_ip) = (ip("100.64.0.2"), ip("100.64.0.3"));
    let mut alice = ClientNat::new(NatConfig::default(), &[alice_ip]);
    let mut bob = ClientNat::new(NatConfig::default(), &[bob_ip]);
    // Two domains, each with its own proxy IP, resolve to the same address.
    let (p_app, p_api) = (proxy(true, 1), proxy(true, 2));
    for nat in [&mut alice, &mut bob] {
        nat.set_mapping(p_app, Mapping::to(r), t(0)).unwrap();
        nat.set_mapping(p_api, Mapping::to(r), t(0)).unwrap();
    }
    // Alice uses the same source port towards both domains.
    let mut a1 = build::tcp(sa(alice_ip, 5000), sa(p_app, 443), tcp::SYN, 0);
    let mut a2 = build::tcp(sa(alice_ip, 5000), sa(p_api, 443), tcp::SYN, 0);
    forward_out(&mut alice, &mut a1, t(1));
    forward_out(&mut alice, &mut a2, t(1));
    let port_of = |p: &[u8]| get_u16(p, 20);
    assert_eq!(port_of(&a1), 5000, "the client's port is kept when free");
    assert_ne!(
        port_of(&a2),
        5000,
        "the second flow to the same real IP needs another port"
    );
    // Bob, independently, also from 5000, also to the app.
    let mut b1 = build::tcp(sa(bob_ip, 5000), sa(p_app, 443), tcp::SYN, 0);
    forward_out(&mut bob, &mut b1, t(1));
    assert_eq!(port_of(&b1), 5000);

    // Replies find their way back to the right domain and client.
    let mut r1 = build::tcp(sa(r, 443), sa(alice_ip, 5000), tcp::ACK, 5);
    let mut r2 = build::tcp(sa(r, 443), sa(alice_ip, port_of(&a2)), tcp::ACK, 5);
    let mut rb = build::tcp(sa(r, 443), sa(bob_ip, 5000), tcp::ACK, 5);
    forward_in(&mut alice, &mut r1, t(2));
    forward_in(&mut alice, &mut r2, t(2));
    forward_in(&mut bob, &mut rb, t(2));
    assert_same_packet(
        &r1,
        &build::tcp(sa(p_app, 443), sa(alice_ip, 5000), tcp::ACK, 5),
    );
    assert_same_packet(
        &r2,
        &build::tcp(sa(p_api, 443), sa(alice_ip, 5000), tcp::ACK, 5),
    );
    assert_same_packet(
        &rb,
        &build::tcp(sa(p_app, 443), sa(bob_ip, 5000), tcp::ACK, 5),
    );
    // Bob cannot receive Alice's traffic.
    let mut stray = build::tcp(sa(r, 443), sa(alice_ip, 5000), tcp::ACK, 5);
    assert_eq!(
        bob.translate_inbound(&mut stray, t(2)),
        Verdict::Drop(DropReason::DestinationNotClient)
    );
}

#[test]
fn re_resolution_keeps_live_sessions_on_their_address() {
    let mut n = nat();
    let (c, p) = (ip(CLIENT4), proxy(true, 1));
    let mut first = build::tcp(sa(c, 1000), sa(p, 80), tcp::SYN, 0);
    forward_out(&mut n, &mut first, t(1));
    let new_real = ip("198.18.0.77");
    n.set_mapping(p, Mapping::to(new_real), t(2)).unwrap();
    let mut again = build::tcp(sa(c, 1000), sa(p, 80), tcp::ACK, 10);
    forward_out(&mut n, &mut again, t(3));
    assert_same_packet(
        &again,
        &build::tcp(sa(c, 1000), sa(real(true), 80), tcp::ACK, 10),
    );
    let mut fresh = build::tcp(sa(c, 1001), sa(p, 80), tcp::SYN, 0);
    forward_out(&mut n, &mut fresh, t(3));
    assert_same_packet(
        &fresh,
        &build::tcp(sa(c, 1001), sa(new_real, 80), tcp::SYN, 0),
    );
}

// ------------------------------------------------------ generated ICMP errors

#[test]
fn unknown_proxy_and_unresolved_domain_get_unreachable() {
    for v4 in [true, false] {
        let mut n = nat();
        let c = client(v4);
        let mut pkt = build::udp(sa(c, 4000), sa(proxy(v4, 9), 53), 10, true);
        let before = pkt.clone();
        assert_eq!(
            n.translate_outbound(&mut pkt, t(1)),
            Verdict::Reply(IcmpError::UnknownProxy)
        );
        assert_eq!(pkt, before, "a refused packet is left untouched");

        // Registered without an address: the family mismatch case (an IPv6
        // proxy of an IPv4-only domain) looks exactly like this.
        n.set_mapping(proxy(v4, 2), Mapping::unresolved(), t(0))
            .unwrap();
        let mut pkt = build::udp(sa(c, 4000), sa(proxy(v4, 2), 53), 10, true);
        let verdict = n.translate_outbound(&mut pkt, t(1));
        assert_eq!(verdict, Verdict::Reply(IcmpError::NoRealAddress));
        let mut out = [0u8; MAX_REPLY_LEN];
        let len = IcmpError::NoRealAddress.write(&pkt, &mut out).unwrap();
        let reply = &out[..len];
        assert_eq!(verify_checksums(reply), Ok(()));
        let info = IpInfo::parse(reply).unwrap();
        assert_eq!((info.src, info.dst), (proxy(v4, 2), c));
        let (ty, code) = (reply[info.l4_offset], reply[info.l4_offset + 1]);
        if v4 {
            assert_eq!(
                (ty, code),
                (v4::DEST_UNREACHABLE, v4::CODE_HOST_UNREACHABLE)
            );
        } else {
            assert_eq!(
                (ty, code),
                (v6::DEST_UNREACHABLE, v6::CODE_ADDRESS_UNREACHABLE)
            );
        }
        assert_eq!(
            &reply[info.l4_offset + 8..],
            &pkt[..],
            "the whole packet is quoted"
        );
    }
}

#[test]
fn cross_family_mappings_are_refused() {
    let mut n = nat();
    assert_eq!(
        n.set_mapping(proxy(false, 3), Mapping::to(real(true)), t(0)),
        Err(MappingError::FamilyMismatch)
    );
    assert_eq!(
        n.set_mapping(ip("10.0.0.1"), Mapping::to(real(true)), t(0)),
        Err(MappingError::NotAProxyIp)
    );
}

#[test]
fn quote_is_limited_to_576_bytes_for_ipv4_and_1280_for_ipv6() {
    for (v4, limit) in [(true, 576), (false, 1280)] {
        let pkt = build::udp(sa(client(v4), 1), sa(proxy(v4, 1), 2), 1400, true);
        let mut out = [0u8; 2000];
        let len = IcmpError::Prohibited.write(&pkt, &mut out).unwrap();
        assert_eq!(len, limit);
        // Quoting a prefix leaves the outer checksums valid.
        assert_eq!(verify_checksums(&out[..len]), Ok(()));
        // A buffer too small for the headers gets nothing.
        assert_eq!(IcmpError::Prohibited.write(&pkt, &mut out[..20]), None);
    }
}

#[test]
fn unresolved_traffic_asks_for_resolution_once_per_interval() {
    let mut n = nat();
    let p = proxy(true, 2);
    n.set_mapping(p, Mapping::unresolved(), t(0)).unwrap();
    let send = |n: &mut ClientNat, at: Timestamp| {
        let mut pkt = build::tcp(sa(ip(CLIENT4), 1), sa(p, 80), tcp::SYN, 0);
        n.translate_outbound(&mut pkt, at)
    };
    send(&mut n, t(10));
    send(&mut n, t(10) + Duration::from_millis(500));
    assert_eq!(n.poll_event(), Some(NatEvent::ResolveUnmapped { proxy: p }));
    assert_eq!(n.poll_event(), None);
    send(&mut n, t(11));
    assert_eq!(n.poll_event(), Some(NatEvent::ResolveUnmapped { proxy: p }));
    // Once resolved, traffic flows and no more events come.
    n.set_mapping(p, Mapping::to(real(true)), t(12)).unwrap();
    assert_eq!(send(&mut n, t(13)), Verdict::Forward);
    assert_eq!(n.poll_event(), None);
}

#[test]
fn expired_dns_answer_asks_for_refresh_on_new_sessions() {
    let mut n = nat();
    let p = proxy(true, 1);
    let mapping = Mapping {
        expires_at: Some(t(30)),
        ..Mapping::to(real(true))
    };
    n.set_mapping(p, mapping, t(0)).unwrap();
    let mut a = build::udp(sa(ip(CLIENT4), 1), sa(p, 53), 0, true);
    forward_out(&mut n, &mut a, t(10));
    assert_eq!(n.poll_event(), None);
    let mut b = build::udp(sa(ip(CLIENT4), 2), sa(p, 53), 0, true);
    forward_out(&mut n, &mut b, t(31));
    assert_eq!(n.poll_event(), Some(NatEvent::RefreshExpired { proxy: p }));
}

#[test]
fn policy_prohibits_ports_even_through_a_live_session() {
    let mut n = nat();
    let p = proxy(true, 1);
    let filter = PortFilter::Rules(vec![PortRule {
        protocol: Protocol::Udp,
        ports: 5353..=5353,
    }]);
    n.set_mapping(
        p,
        Mapping {
            filter: filter.clone(),
            ..Mapping::to(real(true))
        },
        t(0),
    )
    .unwrap();
    let c = ip(CLIENT4);
    let mut tcp80 = build::tcp(sa(c, 1000), sa(p, 80), tcp::SYN, 0);
    assert_eq!(
        n.translate_outbound(&mut tcp80, t(1)),
        Verdict::Reply(IcmpError::Prohibited)
    );
    let mut out = [0u8; MAX_REPLY_LEN];
    let len = IcmpError::Prohibited.write(&tcp80, &mut out).unwrap();
    assert_eq!(
        (out[20], out[21]),
        (v4::DEST_UNREACHABLE, v4::CODE_ADMIN_PROHIBITED)
    );
    assert_eq!(verify_checksums(&out[..len]), Ok(()));

    let mut ok = build::udp(sa(c, 2000), sa(p, 5353), 4, true);
    forward_out(&mut n, &mut ok, t(1));
    // Same client port, same proxy, forbidden destination port.
    let mut sneaky = build::udp(sa(c, 2000), sa(p, 22), 4, true);
    assert_eq!(
        n.translate_outbound(&mut sneaky, t(1)),
        Verdict::Reply(IcmpError::Prohibited)
    );
    // Narrowing the filter ends sessions it no longer allows.
    n.set_mapping(
        p,
        Mapping {
            filter: PortFilter::Rules(vec![]),
            ..Mapping::to(real(true))
        },
        t(2),
    )
    .unwrap();
    assert_eq!(n.session_count(), 0);
    let mut late = build::udp(sa(real(true), 5353), sa(c, 2000), 4, true);
    assert_eq!(
        n.translate_inbound(&mut late, t(3)),
        Verdict::Drop(DropReason::ExpiredSession)
    );
}

#[test]
fn generated_errors_are_rate_limited() {
    let mut n = nat_with(NatConfig {
        icmp_errors_per_sec: 1,
        icmp_error_burst: 2,
        ..NatConfig::default()
    });
    let mut verdicts = Vec::new();
    for i in 0..4 {
        let mut pkt = build::udp(sa(ip(CLIENT4), 100 + i), sa(proxy(true, 200), 53), 0, true);
        verdicts.push(n.translate_outbound(&mut pkt, t(1)));
    }
    let replies = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Reply(_)))
        .count();
    assert_eq!(replies, 2);
    assert_eq!(verdicts[3], Verdict::Drop(DropReason::IcmpRateLimited));
    let mut pkt = build::udp(sa(ip(CLIENT4), 1), sa(proxy(true, 200), 53), 0, true);
    assert!(matches!(
        n.translate_outbound(&mut pkt, t(2)),
        Verdict::Reply(_)
    ));
}

// ------------------------------------------------------------------- drops

#[test]
fn drop_reasons() {
    let mut n = nat();
    let (c, p) = (ip(CLIENT4), proxy(true, 1));
    let mut cases: Vec<(Vec<u8>, bool, DropReason)> = vec![
        (vec![], true, DropReason::Truncated),
        (vec![0x45, 0, 0], true, DropReason::Truncated),
        (
            build::udp(sa(ip("100.64.0.99"), 1), sa(p, 53), 0, true),
            true,
            DropReason::SourceNotClient,
        ),
        (
            build::udp(sa(c, 1), sa(ip("8.8.8.8"), 53), 0, true),
            true,
            DropReason::NotProxyDestination,
        ),
        (
            build::udp(sa(real(true), 53), sa(ip("100.64.0.99"), 1), 0, true),
            false,
            DropReason::DestinationNotClient,
        ),
        (
            build::udp(sa(real(true), 53), sa(c, 1), 0, true),
            false,
            DropReason::NoSession,
        ),
        (
            build::tcp(sa(c, 1), sa(p, 80), tcp::RST, 0),
            true,
            DropReason::RstWithoutSession,
        ),
        (
            build::icmp_echo(real(true), c, true, 1, 1, 0),
            false,
            DropReason::UnsupportedIcmp,
        ),
        (
            build::icmp_echo(c, p, false, 1, 1, 0),
            true,
            DropReason::UnsupportedIcmp,
        ),
        (
            build::icmp(c, p, v4::DEST_UNREACHABLE, 3, [0; 4], &[0; 28]),
            true,
            DropReason::OutboundIcmpError,
        ),
        (
            build::icmp(real(true), c, v4::PARAMETER_PROBLEM, 0, [0; 4], &[0; 28]),
            false,
            DropReason::UnsupportedIcmp,
        ),
    ];
    // Another protocol (GRE).
    let mut gre = build::udp(sa(c, 1), sa(p, 53), 0, true);
    gre[9] = 47;
    cases.push((gre, true, DropReason::UnsupportedProtocol));
    // A later fragment whose first one was never seen.
    let mut frag = build::udp(sa(c, 1), sa(p, 53), 0, true);
    frag[7] = 1;
    cases.push((frag, true, DropReason::Fragment));
    // A UDP length that exceeds the IP payload.
    let mut bad_len = build::udp(sa(c, 1), sa(p, 53), 0, true);
    bad_len[25] = 9;
    cases.push((bad_len, true, DropReason::BadTransportLength));
    for (mut pkt, outbound, want) in cases {
        let before = pkt.clone();
        let got = if outbound {
            n.translate_outbound(&mut pkt, t(1))
        } else {
            n.translate_inbound(&mut pkt, t(1))
        };
        assert_eq!(got, Verdict::Drop(want), "{before:x?}");
        assert_eq!(pkt, before, "a dropped packet is left untouched");
    }
    assert_eq!(n.session_count(), 0);
}

/// Inserts an 8-byte IPv6 destination-options header (one PadN option)
/// before the transport header; the transport checksum does not change
/// (the pseudo-header counts the upper-layer length).
fn with_dest_opts(pkt: &[u8]) -> Vec<u8> {
    let mut p = pkt[..40].to_vec();
    let plen = u16::from_be_bytes([p[4], p[5]]) + 8;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p[6] = 60;
    p.extend_from_slice(&[pkt[6], 0, 1, 4, 0, 0, 0, 0]);
    p.extend_from_slice(&pkt[40..]);
    p
}

#[test]
fn ipv6_extension_headers_are_skipped_both_ways() {
    let mut n = nat();
    let (c, p, r) = (client(false), proxy(false, 1), real(false));
    for (proto, mk) in [
        (
            "tcp",
            (|a, b| build::tcp(a, b, tcp::SYN, 10)) as fn(SocketAddr, SocketAddr) -> Vec<u8>,
        ),
        ("udp", |a, b| build::udp(a, b, 10, true)),
    ] {
        let mut out = with_dest_opts(&mk(sa(c, 7000), sa(p, 53)));
        assert_eq!(verify_checksums(&out), Ok(()), "{proto}");
        forward_out(&mut n, &mut out, t(1));
        assert_same_packet(&out, &with_dest_opts(&mk(sa(c, 7000), sa(r, 53))));
        let mut back = with_dest_opts(&mk(sa(r, 53), sa(c, 7000)));
        forward_in(&mut n, &mut back, t(1));
        assert_same_packet(&back, &with_dest_opts(&mk(sa(p, 53), sa(c, 7000))));
    }
}

// --------------------------------------------------------------- fragments

/// Splits a whole packet into two fragments, the first carrying `split`
/// bytes (a multiple of 8) of the transport segment.
fn fragment(pkt: &[u8], split: usize, ident: u32) -> (Vec<u8>, Vec<u8>) {
    let info = IpInfo::parse(pkt).unwrap();
    let l4 = &pkt[info.l4_offset..info.end];
    let (a, b) = l4.split_at(split);
    let make = |data: &[u8], offset: usize, more: bool| -> Vec<u8> {
        if info.is_v4() {
            let mut h = pkt[..20].to_vec();
            h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&(ident as u16).to_be_bytes());
            let word = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&word.to_be_bytes());
            h.extend_from_slice(data);
            crate::packet::ipv4::Ipv4Packet::new_checked(&mut h[..])
                .unwrap()
                .fill_checksum();
            h
        } else {
            let mut h = pkt[..40].to_vec();
            h[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
            h[6] = 44;
            h.push(pkt[6]);
            h.push(0);
            h.extend_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
            h.extend_from_slice(&ident.to_be_bytes());
            h.extend_from_slice(data);
            h
        }
    };
    (make(a, 0, true), make(b, split, false))
}

#[test]
fn fragments_follow_their_first_fragment_both_ways() {
    for v4 in [true, false] {
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            let mut n = nat();
            let (c, p, r) = (client(v4), proxy(v4, 1), real(v4));
            let mk = |src, dst| match protocol {
                Protocol::Tcp => build::tcp(src, dst, tcp::ACK, 300),
                _ => build::udp(src, dst, 300, true),
            };
            let (mut f1, mut f2) = fragment(&mk(sa(c, 1000), sa(p, 53)), 48, 0x4242);
            let before = f2.clone();
            assert_eq!(
                n.translate_outbound(&mut f2, t(1)),
                Verdict::Drop(DropReason::Fragment),
                "a later fragment before its first"
            );
            assert_eq!(f2, before);
            forward_out(&mut n, &mut f1, t(1));
            forward_out(&mut n, &mut f2, t(1));
            let (w1, w2) = fragment(&mk(sa(c, 1000), sa(r, 53)), 48, 0x4242);
            assert_same_packet(&f1, &w1);
            assert_same_packet(&f2, &w2);

            let (mut g1, mut g2) = fragment(&mk(sa(r, 53), sa(c, 1000)), 48, 7);
            forward_in(&mut n, &mut g1, t(2));
            forward_in(&mut n, &mut g2, t(2));
            let (w1, w2) = fragment(&mk(sa(p, 53), sa(c, 1000)), 48, 7);
            assert_same_packet(&g1, &w1);
            assert_same_packet(&g2, &w2);

            // Reassembling the translated fragments gives a valid datagram.
            let info = IpInfo::parse(&g2).unwrap();
            let mut whole = mk(sa(p, 53), sa(c, 1000));
            let l4 = IpInfo::parse(&whole).unwrap().l4_offset;
            let first = IpInfo::parse(&g1).unwrap();
            whole[l4..l4 + 48].copy_from_slice(&g1[first.l4_offset..first.end]);
            whole[l4 + 48..].copy_from_slice(&g2[info.l4_offset..info.end]);
            assert_eq!(verify_checksums(&whole), Ok(()));

            // The memory of a datagram is short.
            let (_, mut late) = fragment(&mk(sa(r, 53), sa(c, 1000)), 48, 7);
            assert_eq!(
                n.translate_inbound(&mut late, t(2) + NatConfig::default().fragment_ttl),
                Verdict::Drop(DropReason::Fragment)
            );
        }
    }
}

// ------------------------------------------------------------------ expiry

/// Opens a session of `kind`, answers it if `answered`, then checks that an
/// inbound packet just before `limit` after the last packet passes and one at
/// `limit` is dropped as expired.
fn check_idle_limit(protocol: Protocol, answered: bool, limit: Duration) {
    let mut n = nat();
    let (c, p, r) = (ip(CLIENT4), proxy(true, 1), real(true));
    let out = |n: &mut ClientNat, at| {
        let mut pkt = match protocol {
            Protocol::Tcp => build::tcp(sa(c, 1000), sa(p, 80), tcp::ACK, 0),
            Protocol::Udp => build::udp(sa(c, 1000), sa(p, 80), 0, true),
            Protocol::Icmp => build::icmp_echo(c, p, true, 1000, 1, 0),
        };
        forward_out(n, &mut pkt, at);
    };
    let inbound = |n: &mut ClientNat, at| {
        let mut pkt = match protocol {
            Protocol::Tcp => build::tcp(sa(r, 80), sa(c, 1000), tcp::ACK, 0),
            Protocol::Udp => build::udp(sa(r, 80), sa(c, 1000), 0, true),
            Protocol::Icmp => build::icmp_echo(r, c, false, 1000, 1, 0),
        };
        n.translate_inbound(&mut pkt, at)
    };
    out(&mut n, t(100));
    let last = if answered {
        assert_eq!(inbound(&mut n, t(101)), Verdict::Forward);
        t(101)
    } else {
        t(100)
    };
    // The session's own timer says when.
    let due = n.poll_timeout().unwrap();
    assert!(
        due <= last + limit,
        "{protocol:?}: timer {due:?} later than {:?}",
        last + limit
    );
    let just_before = last + (limit - Duration::from_millis(1));
    assert_eq!(
        n.handle_timeout(just_before),
        0,
        "{protocol:?} answered={answered}"
    );
    assert_eq!(n.session_count(), 1);
    assert_eq!(
        n.handle_timeout(last + limit),
        1,
        "{protocol:?} answered={answered}"
    );
    assert_eq!(n.session_count(), 0);
    assert_eq!(
        inbound(&mut n, last + limit),
        Verdict::Drop(DropReason::ExpiredSession)
    );
}

#[test]
fn every_idle_limit_expires_sessions() {
    let l = IdleLimits::default();
    check_idle_limit(Protocol::Tcp, true, l.tcp);
    check_idle_limit(Protocol::Udp, true, l.udp);
    check_idle_limit(Protocol::Icmp, true, l.icmp);
    for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Icmp] {
        check_idle_limit(protocol, false, l.unanswered);
    }
    assert_eq!(l.tcp, Duration::from_secs(7440));
    assert_eq!(l.udp, Duration::from_secs(120));
    assert_eq!(l.icmp, Duration::from_secs(120));
    assert_eq!(l.unanswered, Duration::from_secs(60));
    assert_eq!(l.fin, Duration::from_secs(5));
}

#[test]
fn deadline_is_enforced_even_before_handle_timeout() {
    let mut n = nat();
    let (c, p, r) = (ip(CLIENT4), proxy(true, 1), real(true));
    let mut pkt = build::udp(sa(c, 1), sa(p, 53), 0, true);
    forward_out(&mut n, &mut pkt, t(0));
    let mut late = build::udp(sa(r, 53), sa(c, 1), 0, true);
    assert_eq!(
        n.translate_inbound(&mut late, t(60)),
        Verdict::Drop(DropReason::ExpiredSession)
    );
}

#[test]
fn fin_both_ways_expires_after_five_seconds() {
    let mut n = nat();
    let (c, p, r) = (ip(CLIENT4), proxy(true, 1), real(true));
    let mut syn = build::tcp(sa(c, 1000), sa(p, 80), tcp::SYN, 0);
    forward_out(&mut n, &mut syn, t(1));
    let mut fin_in = build::tcp(sa(r, 80), sa(c, 1000), tcp::FIN | tcp::ACK, 0);
    forward_in(&mut n, &mut fin_in, t(2));
    // One FIN is not enough.
    assert_eq!(n.handle_timeout(t(100)), 0);
    let mut fin_out = build::tcp(sa(c, 1000), sa(p, 80), tcp::FIN | tcp::ACK, 0);
    forward_out(&mut n, &mut fin_out, t(100));
    assert_eq!(n.poll_timeout(), Some(t(105)));
    // The last ACK still passes inside the five seconds.
    let mut ack = build::tcp(sa(r, 80), sa(c, 1000), tcp::ACK, 0);
    forward_in(&mut n, &mut ack, t(103));
    assert_eq!(n.handle_timeout(t(107)), 0);
    assert_eq!(n.handle_timeout(t(108)), 1);
    let mut late = build::tcp(sa(r, 80), sa(c, 1000), tcp::ACK, 0);
    assert_eq!(
        n.translate_inbound(&mut late, t(108)),
        Verdict::Drop(DropReason::ExpiredSession)
    );
}

#[test]
fn rst_in_either_direction_ends_the_session_at_once() {
    for rst_outbound in [true, false] {
        let mut n = nat();
        let (c, p, r) = (ip(CLIENT4), proxy(true, 1), real(true));
        let mut syn = build::tcp(sa(c, 1000), sa(p, 80), tcp::SYN, 0);
        forward_out(&mut n, &mut syn, t(1));
        if rst_outbound {
            let mut rst = build::tcp(sa(c, 1000), sa(p, 80), tcp::RST, 0);
            forward_out(&mut n, &mut rst, t(2));
        } else {
            let mut rst = build::tcp(sa(r, 80), sa(c, 1000), tcp::RST | tcp::ACK, 0);
            forward_in(&mut n, &mut rst, t(2));
        }
        assert_eq!(n.session_count(), 0);
        let mut late = build::tcp(sa(r, 80), sa(c, 1000), tcp::ACK, 0);
        assert_eq!(
            n.translate_inbound(&mut late, t(2)),
            Verdict::Drop(DropReason::ExpiredSession)
        );
    }
}

#[test]
fn removing_a_mapping_ends_its_sessions() {
    let mut n = nat();
    let (c, r) = (ip(CLIENT4), real(true));
    n.set_mapping(proxy(true, 2), Mapping::to(r), t(0)).unwrap();
    let mut a = build::udp(sa(c, 1), sa(proxy(true, 1), 53), 0, true);
    let mut b = build::udp(sa(c, 2), sa(proxy(true, 2), 53), 0, true);
    forward_out(&mut n, &mut a, t(1));
    forward_out(&mut n, &mut b, t(1));
    assert!(n.remove_mapping(proxy(true, 1), t(2)));
    assert!(!n.remove_mapping(proxy(true, 1), t(2)));
    assert_eq!(n.session_count(), 1);
    let mut late = build::udp(sa(r, 53), sa(c, 1), 0, true);
    assert_eq!(
        n.translate_inbound(&mut late, t(3)),
        Verdict::Drop(DropReason::ExpiredSession)
    );
    let mut still = build::udp(sa(r, 53), sa(c, 2), 0, true);
    forward_in(&mut n, &mut still, t(3));
    let mut again = build::udp(sa(c, 1), sa(proxy(true, 1), 53), 0, true);
    assert_eq!(
        n.translate_outbound(&mut again, t(4)),
        Verdict::Reply(IcmpError::UnknownProxy)
    );
}

// ------------------------------------------------- ICMP errors coming back

/// Sends `original` out through `n`, then has `router` answer it with an ICMP
/// error of (ty, code) quoting the first `quote_len` bytes of what left the
/// gateway, and translates that error back.
fn error_round_trip(
    n: &mut ClientNat,
    original: &[u8],
    router: IpAddr,
    ty: u8,
    code: u8,
    quote_len: usize,
) -> (Verdict, Vec<u8>) {
    let mut sent = original.to_vec();
    forward_out(n, &mut sent, t(1));
    let info = IpInfo::parse(&sent).unwrap();
    let quote = &sent[..quote_len.min(sent.len())];
    let mut err = build::icmp(router, info.src, ty, code, [0, 0, 0x05, 0x00], quote);
    let verdict = n.translate_inbound(&mut err, t(2));
    (verdict, err)
}

#[test]
fn icmp_errors_are_translated_with_their_quote() {
    let router4 = ip("203.0.113.1");
    let router6 = ip("2001:db8:ffff::1");
    for v4 in [true, false] {
        let (c, p) = (client(v4), proxy(v4, 1));
        let router = if v4 { router4 } else { router6 };
        let (unreach, too_big, exceeded) = if v4 {
            (
                v4::DEST_UNREACHABLE,
                v4::DEST_UNREACHABLE,
                v4::TIME_EXCEEDED,
            )
        } else {
            (v6::DEST_UNREACHABLE, v6::PACKET_TOO_BIG, v6::TIME_EXCEEDED)
        };
        let originals = [
            build::tcp(sa(c, 3333), sa(p, 443), tcp::ACK, 1200),
            build::udp(sa(c, 4444), sa(p, 53), 30, true),
            build::icmp_echo(c, p, true, 5555, 3, 16),
        ];
        for original in &originals {
            for (ty, code) in [
                (unreach, 3),
                (too_big, if v4 { 4 } else { 0 }),
                (exceeded, 0),
            ] {
                // The whole packet quoted, and a quote cut to IP header + 8.
                let hdr = IpInfo::parse(original).unwrap().l4_offset;
                for quote_len in [usize::MAX, hdr + 8] {
                    let mut n = nat();
                    let (verdict, err) =
                        error_round_trip(&mut n, original, router, ty, code, quote_len);
                    assert_eq!(verdict, Verdict::Forward);
                    assert_eq!(verify_checksums(&err), Ok(()), "{err:x?}");
                    let outer = IpInfo::parse(&err).unwrap();
                    assert_eq!((outer.src, outer.dst), (p, c), "comes from the proxy IP");
                    assert_eq!((err[outer.l4_offset], err[outer.l4_offset + 1]), (ty, code));
                    // The quote is what the client sent, byte for byte.
                    let quote = &err[outer.l4_offset + 8..];
                    let want = &original[..quote.len()];
                    if quote_len == usize::MAX {
                        assert_same_packet(quote, want);
                    } else {
                        assert_eq!(quote, want);
                    }
                }
            }
        }
    }
}

#[test]
fn icmp_errors_that_match_nothing_are_dropped() {
    let mut n = nat();
    let (c, p) = (ip(CLIENT4), proxy(true, 1));
    let original = build::udp(sa(c, 4444), sa(p, 53), 30, true);
    let (v, mut err) = error_round_trip(&mut n, &original, ip("203.0.113.1"), 3, 3, usize::MAX);
    assert_eq!(v, Verdict::Forward);
    // The same error again: already translated, its quote names the proxy
    // IP, which has no session on the outside.
    assert_eq!(
        n.translate_inbound(&mut err, t(2)),
        Verdict::Drop(DropReason::IcmpErrorNoMatch)
    );
    // A quote that is not from this client.
    let other = build::udp(sa(ip("100.64.0.9"), 4444), sa(real(true), 53), 30, true);
    let mut err = build::icmp(ip("203.0.113.1"), c, 3, 3, [0; 4], &other);
    assert_eq!(
        n.translate_inbound(&mut err, t(2)),
        Verdict::Drop(DropReason::IcmpErrorNoMatch)
    );
    // A quote too short for an IP header.
    let mut err = build::icmp(ip("203.0.113.1"), c, 3, 3, [0; 4], &other[..12]);
    assert_eq!(
        n.translate_inbound(&mut err, t(2)),
        Verdict::Drop(DropReason::MalformedQuote)
    );
}

// --------------------------------------------------------------- proptests

#[derive(Debug, Clone)]
struct Case {
    v4: bool,
    protocol: Protocol,
    client_port: u16,
    dst_port: u16,
    payload: usize,
    udp_checksum: bool,
    tcp_flags: u8,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop_oneof![
            Just(Protocol::Tcp),
            Just(Protocol::Udp),
            Just(Protocol::Icmp)
        ],
        1u16..,
        1u16..,
        0usize..1400,
        any::<bool>(),
        // Any flags but RST, which ends the session it would be tested on.
        any::<u8>().prop_map(|f| f & !tcp::RST),
    )
        .prop_map(
            |(v4, protocol, client_port, dst_port, payload, udp_ck, tcp_flags)| Case {
                v4,
                protocol,
                client_port,
                dst_port,
                payload,
                // A zero UDP checksum exists only over IPv4.
                udp_checksum: udp_ck || !v4,
                tcp_flags,
            },
        )
}

fn build_case(c: &Case, src: SocketAddr, dst: SocketAddr, request: bool) -> Vec<u8> {
    match c.protocol {
        Protocol::Tcp => build::tcp(src, dst, c.tcp_flags, c.payload),
        Protocol::Udp => build::udp(src, dst, c.payload, c.udp_checksum),
        Protocol::Icmp => {
            let id = if request { src.port() } else { dst.port() };
            build::icmp_echo(src.ip(), dst.ip(), request, id, 9, c.payload)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Outbound then inbound gives back the original addresses and ports,
    /// and every checksum verifies by full recomputation at each step.
    #[test]
    fn round_trip_every_protocol_and_family(c in case(), other_sessions in 0usize..4) {
        let mut n = nat();
        let (cl, p, r) = (client(c.v4), proxy(c.v4, 1), real(c.v4));
        // Other live sessions from neighbouring ports, so the port the case
        // uses may have to move.
        for i in 0..other_sessions {
            let port = c.client_port.wrapping_add(i as u16 + 1).max(1);
            let mut o = build_case(&c, sa(cl, port), sa(proxy(c.v4, 2), c.dst_port), true);
            n.set_mapping(proxy(c.v4, 2), Mapping::to(r), t(0)).unwrap();
            prop_assert_eq!(n.translate_outbound(&mut o, t(1)), Verdict::Forward);
        }
        let mut pkt = build_case(&c, sa(cl, c.client_port), sa(p, c.dst_port), true);
        prop_assert_eq!(n.translate_outbound(&mut pkt, t(1)), Verdict::Forward);
        prop_assert_eq!(verify_checksums(&pkt), Ok(()));
        let info = IpInfo::parse(&pkt).unwrap();
        prop_assert_eq!((info.src, info.dst), (cl, r));
        let outside_port = match c.protocol {
            Protocol::Icmp => get_u16(&pkt, info.l4_offset + 4),
            _ => get_u16(&pkt, info.l4_offset),
        };
        // Byte for byte what a host at the outside port would have sent.
        assert_same_packet(&pkt, &build_case(&c, sa(cl, outside_port), sa(r, c.dst_port), true));

        let mut reply = build_case(&c, sa(r, c.dst_port), sa(cl, outside_port), false);
        prop_assert_eq!(n.translate_inbound(&mut reply, t(2)), Verdict::Forward);
        prop_assert_eq!(verify_checksums(&reply), Ok(()));
        assert_same_packet(&reply, &build_case(&c, sa(p, c.dst_port), sa(cl, c.client_port), false));
    }

    /// ICMP errors about any translated packet come back translated, with
    /// valid checksums, whatever the quote length.
    #[test]
    fn icmp_error_round_trip(c in case(), cut in 0usize..64, kind in 0usize..3) {
        let mut n = nat();
        let (cl, p) = (client(c.v4), proxy(c.v4, 1));
        let original = build_case(&c, sa(cl, c.client_port), sa(p, c.dst_port), true);
        let hdr = IpInfo::parse(&original).unwrap().l4_offset;
        let (ty, code) = match (c.v4, kind) {
            (true, 0) => (3, 1),
            (true, 1) => (3, 4),
            (true, _) => (11, 0),
            (false, 0) => (1, 4),
            (false, 1) => (2, 0),
            (false, _) => (3, 1),
        };
        let router = if c.v4 { ip("203.0.113.1") } else { ip("2001:db8:ffff::1") };
        let quote_len = hdr + 8 + cut;
        let (verdict, err) = error_round_trip(&mut n, &original, router, ty, code, quote_len);
        prop_assert_eq!(verdict, Verdict::Forward);
        prop_assert_eq!(verify_checksums(&err), Ok(()));
        let outer = IpInfo::parse(&err).unwrap();
        prop_assert_eq!((outer.src, outer.dst), (p, cl));
        let quote = &err[outer.l4_offset + 8..];
        let want = &original[..quote.len()];
        // Addresses and port (or id) are the client's again.
        let q = IpInfo::parse_quoted(quote).unwrap();
        prop_assert_eq!((q.src, q.dst), (cl, p));
        let field = if c.protocol == Protocol::Icmp { 4 } else { 0 };
        prop_assert_eq!(get_u16(quote, q.l4_offset + field), c.client_port);
        if quote.len() == original.len() {
            assert_same_packet(quote, want);
        }
    }

    /// Arbitrary bytes never panic, and anything but `Forward` leaves the
    /// buffer untouched.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600), v in 0u8..3) {
        let mut n = nat();
        let mut pkt = bytes.clone();
        // Nudge a share of inputs past the version check.
        if let Some(b) = pkt.first_mut() {
            match v {
                0 => *b = 0x45,
                1 => *b = 0x60,
                _ => {}
            }
        }
        let original = pkt.clone();
        let mut out = [0u8; MAX_REPLY_LEN];
        for outbound in [true, false] {
            let mut p = original.clone();
            let verdict = if outbound {
                n.translate_outbound(&mut p, t(1))
            } else {
                n.translate_inbound(&mut p, t(1))
            };
            if verdict != Verdict::Forward {
                prop_assert_eq!(&p, &original);
            }
            let _ = IcmpError::UnknownProxy.write(&original, &mut out);
            let _ = verify_checksums(&original);
        }
    }

    /// Valid packets with a few bytes corrupted or cut never panic either.
    #[test]
    fn mutated_packets_never_panic(
        c in case(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        inbound_first in any::<bool>(),
    ) {
        let mut n = nat();
        let (cl, p, r) = (client(c.v4), proxy(c.v4, 1), real(c.v4));
        let mut seed = build_case(&c, sa(cl, c.client_port), sa(p, c.dst_port), true);
        let _ = n.translate_outbound(&mut seed, t(1));
        let mut pkt = if inbound_first {
            build_case(&c, sa(r, c.dst_port), sa(cl, c.client_port), false)
        } else {
            build_case(&c, sa(cl, c.client_port), sa(p, c.dst_port), true)
        };
        for (at, byte) in &flips {
            let i = at.index(pkt.len());
            pkt[i] = *byte;
        }
        pkt.truncate(cut.index(pkt.len() + 1));
        let _ = n.translate_inbound(&mut pkt.clone(), t(2));
        let _ = n.translate_outbound(&mut pkt, t(2));
        n.handle_timeout(t(10_000));
    }
}

/// Writes seed inputs for the fuzz targets into `$DNSNAT_FUZZ_SEEDS/<target>/`
/// (run by `scripts/fuzz.sh`): well-formed packets of every protocol and
/// family, and `nat_translate` scripts that open sessions, answer them, send
/// ICMP errors back and let time pass.
#[test]
#[ignore = "writes files; run by scripts/fuzz.sh"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("DNSNAT_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let parse_dir = dir.join("packet_parse");
    let nat_dir = dir.join("nat_translate");
    std::fs::create_dir_all(&parse_dir).unwrap();
    std::fs::create_dir_all(&nat_dir).unwrap();
    let step = |script: &mut Vec<u8>, op: u8, pkt: &[u8]| {
        script.push(op);
        script.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
        script.extend_from_slice(pkt);
    };
    let mut n = 0;
    for v4 in [true, false] {
        for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Icmp] {
            let c = Case {
                v4,
                protocol,
                client_port: 40000,
                dst_port: 443,
                payload: 24,
                udp_checksum: true,
                tcp_flags: tcp::SYN,
            };
            let (cl, r) = (client(v4), real(v4));
            let out = build_case(&c, sa(cl, 40000), sa(proxy(v4, 1), 443), true);
            let out2 = build_case(&c, sa(cl, 40000), sa(proxy(v4, 2), 443), true);
            let unresolved = build_case(&c, sa(cl, 40001), sa(proxy(v4, 3), 443), true);
            let back = build_case(&c, sa(r, 443), sa(cl, 40000), false);
            let mut nat = nat();
            nat.set_mapping(proxy(v4, 2), Mapping::to(r), t(0)).unwrap();
            let mut sent = out.clone();
            nat.translate_outbound(&mut sent, t(1));
            let (ty, code) = if v4 { (3, 4) } else { (2, 0) };
            let err = build::icmp(
                ip(if v4 {
                    "203.0.113.1"
                } else {
                    "2001:db8:ffff::1"
                }),
                cl,
                ty,
                code,
                [0, 0, 5, 0],
                &sent,
            );
            for (i, p) in [&out, &back, &err, &unresolved].into_iter().enumerate() {
                std::fs::write(parse_dir.join(format!("seed-{n}-{i}")), p).unwrap();
            }
            let mut script = Vec::new();
            step(&mut script, 1, &out);
            step(&mut script, 2, &out2);
            step(&mut script, 3, &back);
            step(&mut script, 3, &err);
            step(&mut script, 1, &unresolved);
            script.push(4); // time passes
            step(&mut script, 3, &back);
            if protocol != Protocol::Icmp {
                // A datagram in two fragments, each way.
                let (f1, f2) = fragment(&out, 24, 99);
                let (g1, g2) = fragment(&back, 24, 98);
                for (op, f) in [(1, &f1), (1, &f2), (3, &g1), (3, &g2)] {
                    step(&mut script, op, f);
                }
                std::fs::write(parse_dir.join(format!("seed-{n}-frag")), &f1).unwrap();
            }
            std::fs::write(nat_dir.join(format!("seed-{n}")), &script).unwrap();
            n += 1;
        }
    }
}

// ---------------------------------------------------------------- idleness

#[test]
fn a_mapping_is_idle_from_its_install_or_last_new_session_and_never_while_used() {
    let mut n = nat();
    let (c, p) = (client(true), proxy(true, 1));
    assert_eq!(n.idle_for(p, t(10)), Some(Duration::from_secs(10)));
    assert_eq!(n.idle_for(proxy(true, 9), t(10)), None);
    let mut pkt = build::udp(sa(c, 5000), sa(p, 53), 8, true);
    forward_out(&mut n, &mut pkt, t(10));
    // A live session: in use, however long ago it opened.
    assert_eq!(n.idle_for(p, t(100)), Some(Duration::ZERO));
    // The UDP session (unanswered) ends 60 s after its packet; from then on
    // the mapping counts as idle since that session opened.
    n.handle_timeout(t(200));
    assert_eq!(n.idle_for(p, t(200)), Some(Duration::from_secs(190)));
    // Replacing the mapping (a new address) keeps its history.
    n.set_mapping(p, Mapping::to(real(true)), t(200)).unwrap();
    assert_eq!(n.idle_for(p, t(210)), Some(Duration::from_secs(200)));
    // Removing it forgets it, sessions and all.
    forward_out(
        &mut n,
        &mut build::udp(sa(c, 5001), sa(p, 53), 8, true),
        t(210),
    );
    assert!(n.remove_mapping(p, t(211)));
    assert_eq!(n.session_count(), 0);
    assert_eq!(n.idle_for(p, t(211)), None);
}
