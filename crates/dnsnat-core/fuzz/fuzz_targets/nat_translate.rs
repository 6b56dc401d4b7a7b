//! The NAT, both ways, on fuzzer-chosen packets and time steps.
//!
//! The input is a script: each step is a one-byte opcode and, for packet
//! steps, a packet with a two-byte big-endian length prefix (opcode % 4:
//! 0 advances time and runs timers, 1 outbound, 2 outbound then the real
//! host's answer, 3 inbound). `scripts/fuzz.sh` seeds the corpus with
//! well-formed scripts written by the `write_fuzz_seeds` test. Besides "never panics", it checks the
//! properties the proptests check, on inputs a fuzzer can steer deeper:
//! - a packet that is not forwarded is left untouched;
//! - a forwarded packet whose checksums were valid still has valid ones
//!   (so the incremental updates agree with a full recomputation);
//! - a forwarded outbound packet, answered by the real host (addresses and
//!   ports swapped), translates back to the proxy IP and the client's port.
//!
//! Run: `scripts/fuzz.sh`, or `cargo +nightly fuzz run nat_translate`.
#![no_main]

use std::net::IpAddr;
use std::time::Duration;

use dnsnat_core::nat::{ClientNat, Mapping, NatConfig, Timestamp, Verdict};
use dnsnat_core::packet::build::verify_checksums;
use dnsnat_core::packet::ip::IpInfo;
use dnsnat_core::packet::proto;
use libfuzzer_sys::fuzz_target;

const CLIENT4: [u8; 4] = [100, 64, 0, 2];

fn client_ips() -> [IpAddr; 2] {
    [IpAddr::from(CLIENT4), "fd00:2021:1111::2".parse().unwrap()]
}

fn nat() -> ClientNat {
    let mut n = ClientNat::new(
        NatConfig {
            max_sessions: 64,
            ..NatConfig::default()
        },
        &client_ips(),
    );
    // Two domains on one real IP per family, one unresolved proxy each.
    let t0 = Timestamp::ZERO;
    let r4: IpAddr = "198.18.0.10".parse().unwrap();
    let r6: IpAddr = "2001:db8::10".parse().unwrap();
    for (p, m) in [
        ("100.96.0.1", Mapping::to(r4)),
        ("100.96.0.2", Mapping::to(r4)),
        ("100.96.0.3", Mapping::unresolved()),
        ("fd00:2021:1111:8000::1", Mapping::to(r6)),
        ("fd00:2021:1111:8000::2", Mapping::to(r6)),
        ("fd00:2021:1111:8000::3", Mapping::unresolved()),
    ] {
        n.set_mapping(p.parse().unwrap(), m, t0).unwrap();
    }
    n
}

/// Swaps source and destination address and, for TCP/UDP, the ports; turns
/// an echo request into a reply. Returns false for anything else. Swapping
/// keeps every checksum valid except the echo's, which is patched.
fn reflect(pkt: &mut [u8]) -> bool {
    let Ok(info) = IpInfo::parse(pkt) else {
        return false;
    };
    let (a, b, len) = if info.is_v4() {
        (12, 16, 4)
    } else {
        (8, 24, 16)
    };
    for i in 0..len {
        pkt.swap(a + i, b + i);
    }
    let l4 = info.l4_offset;
    match info.protocol {
        proto::TCP | proto::UDP if info.end - l4 >= 4 => {
            pkt.swap(l4, l4 + 2);
            pkt.swap(l4 + 1, l4 + 3);
            true
        }
        p if p == info.icmp_protocol() && info.end - l4 >= 8 => {
            let (req, rep) = if info.is_v4() { (8u8, 0u8) } else { (128, 129) };
            if pkt[l4] != req {
                return false;
            }
            pkt[l4] = rep;
            // The type is the high byte of the first word.
            let ck = u16::from_be_bytes([pkt[l4 + 2], pkt[l4 + 3]]);
            let sum = u32::from(!ck) + u32::from(!(u16::from(req) << 8)) + (u32::from(rep) << 8);
            let sum = (sum & 0xffff) + (sum >> 16);
            let sum = (sum & 0xffff) + (sum >> 16);
            pkt[l4 + 2..l4 + 4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            true
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut n = nat();
    let mut now = Timestamp::from_secs(1);
    let mut rest = data;
    while let [op, tail @ ..] = rest {
        rest = tail;
        match op % 4 {
            0 => {
                now = now + Duration::from_millis(u64::from(*op) * 997);
                n.handle_timeout(now);
                if let Some(t) = n.poll_timeout() {
                    assert!(t > now, "poll_timeout not after handle_timeout");
                }
                while n.poll_event().is_some() {}
            }
            _ => {
                let [hi, lo, tail @ ..] = rest else { break };
                let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
                let (bytes, tail) = tail.split_at(len);
                rest = tail;
                let mut pkt = bytes.to_vec();
                let valid = verify_checksums(&pkt).is_ok();
                let outbound = op % 4 != 3;
                let verdict = if outbound {
                    n.translate_outbound(&mut pkt, now)
                } else {
                    n.translate_inbound(&mut pkt, now)
                };
                if verdict != Verdict::Forward {
                    assert_eq!(pkt, bytes, "refused packets are untouched");
                    continue;
                }
                if valid {
                    assert!(
                        verify_checksums(&pkt).is_ok(),
                        "checksums broken by translation"
                    );
                }
                // Answer an outbound packet as the real host would.
                if outbound && op % 4 == 2 && valid && reflect(&mut pkt) {
                    let before = IpInfo::parse(bytes).unwrap();
                    if n.translate_inbound(&mut pkt, now) == Verdict::Forward {
                        let after = IpInfo::parse(&pkt).unwrap();
                        assert_eq!((after.src, after.dst), (before.dst, before.src));
                        assert!(verify_checksums(&pkt).is_ok());
                        let (a, b) = (before.l4_offset, after.l4_offset);
                        if before.protocol != before.icmp_protocol() {
                            assert_eq!(pkt[b..b + 2], bytes[a + 2..a + 4], "server port");
                            assert_eq!(pkt[b + 2..b + 4], bytes[a..a + 2], "client port");
                        } else {
                            assert_eq!(pkt[b + 4..b + 6], bytes[a + 4..a + 6], "echo id");
                        }
                    }
                }
            }
        }
    }
});
