//! Every packet parser on arbitrary bytes: the IP parse (whole and quoted),
//! each transport view, the full-checksum oracle and the ICMP error builder.
//! None may panic; an ICMP error built about a valid packet must verify.
//!
//! Run: `scripts/fuzz.sh` (stable toolchain with RUSTC_BOOTSTRAP=1), or
//! `cd crates/dnsnat-core && cargo +nightly fuzz run packet_parse`.
#![no_main]

use dnsnat_core::nat::{IcmpError, MAX_REPLY_LEN};
use dnsnat_core::packet::build::verify_checksums;
use dnsnat_core::packet::icmp::IcmpPacket;
use dnsnat_core::packet::ip::IpInfo;
use dnsnat_core::packet::ipv4::Ipv4Packet;
use dnsnat_core::packet::ipv6::Ipv6Packet;
use dnsnat_core::packet::tcp::TcpPacket;
use dnsnat_core::packet::udp::UdpPacket;
use libfuzzer_sys::fuzz_target;

fn views(data: &[u8]) {
    if let Ok(p) = Ipv4Packet::new_quoted(data) {
        let _ = (
            p.src(),
            p.dst(),
            p.payload().len(),
            p.verify_checksum(),
            p.is_fragment(),
        );
    }
    if let Ok(p) = Ipv6Packet::new_quoted(data) {
        let _ = (p.src(), p.dst(), p.upper_layer());
    }
    if let Ok(t) = TcpPacket::new_checked(data) {
        let _ = (t.src_port(), t.dst_port(), t.flags(), t.checksum());
    }
    if let Ok(u) = UdpPacket::new_checked(data) {
        let _ = (u.src_port(), u.dst_port(), u.length(), u.checksum());
    }
    if let Ok(i) = IcmpPacket::new_checked(data) {
        let _ = (i.msg_type(), i.code(), i.echo_id(), i.payload().len());
    }
}

fuzz_target!(|data: &[u8]| {
    views(data);
    for parsed in [IpInfo::parse(data), IpInfo::parse_quoted(data)] {
        if let Ok(info) = parsed {
            assert!(info.l4_offset <= info.end && info.end <= data.len());
            views(&data[info.l4_offset..info.end]);
        }
    }
    let original_ok = verify_checksums(data).is_ok();
    let mut out = [0u8; MAX_REPLY_LEN];
    for e in [IcmpError::UnknownProxy, IcmpError::Prohibited] {
        if let Some(len) = e.write(data, &mut out) {
            // The oracle also checks the quote, i.e. the original's own
            // checksums; the outer ones must always be right.
            if original_ok {
                assert!(
                    verify_checksums(&out[..len]).is_ok(),
                    "built error must verify"
                );
            }
        }
    }
});
