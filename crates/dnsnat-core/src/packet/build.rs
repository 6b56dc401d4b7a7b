//! Building packets from scratch and checking every checksum in full.
//!
//! Not for the translation path: tests, property tests, fuzz targets and
//! benchmarks use these to make well-formed packets of every protocol and
//! family, and [`verify_checksums`] is the independent oracle the incremental
//! updates are checked against.

use std::net::{IpAddr, SocketAddr};

use super::checksum::{finish, is_valid, pseudo_header_sum, put_u16, sum};
use super::icmp::IcmpKind;
use super::ip::{Fragment, IpInfo};
use super::ipv4::Ipv4Packet;
use super::proto;

/// Wraps a transport segment (`l4`, checksum field zero) in an IP header and
/// fills every checksum. `protocol` is the IP protocol number.
fn finish_packet(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    mut l4: Vec<u8>,
    ck_off: Option<usize>,
) -> Vec<u8> {
    if let Some(off) = ck_off {
        let pseudo = if protocol == proto::ICMP {
            0
        } else {
            pseudo_header_sum(src, dst, protocol, l4.len() as u32)
        };
        let mut ck = finish(pseudo + sum(&l4));
        if protocol == proto::UDP && ck == 0 {
            ck = 0xffff;
        }
        put_u16(&mut l4, off, ck);
    }
    let mut p = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, protocol, 0, 0];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            put_u16(&mut h, 2, (20 + l4.len()) as u16);
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, protocol, 64];
            put_u16(&mut h, 4, l4.len() as u16);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        _ => panic!("mixed address families"),
    };
    p.extend_from_slice(&l4);
    if p[0] >> 4 == 4
        && let Ok(mut v) = Ipv4Packet::new_checked(&mut p[..])
    {
        v.fill_checksum();
    }
    p
}

fn payload(len: usize) -> impl Iterator<Item = u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7))
}

/// A TCP segment with a 20-byte header, `flags`, and `payload_len` bytes.
pub fn tcp(src: SocketAddr, dst: SocketAddr, flags: u8, payload_len: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    put_u16(&mut l4, 0, src.port());
    put_u16(&mut l4, 2, dst.port());
    l4[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    put_u16(&mut l4, 14, 65535);
    l4.extend(payload(payload_len));
    finish_packet(src.ip(), dst.ip(), proto::TCP, l4, Some(16))
}

/// A UDP datagram. With `checksum == false` the checksum field is zero
/// (allowed over IPv4 only).
pub fn udp(src: SocketAddr, dst: SocketAddr, payload_len: usize, checksum: bool) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    put_u16(&mut l4, 0, src.port());
    put_u16(&mut l4, 2, dst.port());
    put_u16(&mut l4, 4, (8 + payload_len) as u16);
    l4.extend(payload(payload_len));
    finish_packet(src.ip(), dst.ip(), proto::UDP, l4, checksum.then_some(6))
}

/// An ICMP or ICMPv6 message of type `ty`, code `code`, with the 4-byte
/// "rest of header" `rest` and the given body.
pub fn icmp(src: IpAddr, dst: IpAddr, ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut l4 = vec![ty, code, 0, 0];
    l4.extend_from_slice(&rest);
    l4.extend_from_slice(body);
    let protocol = if src.is_ipv4() {
        proto::ICMP
    } else {
        proto::ICMPV6
    };
    finish_packet(src, dst, protocol, l4, Some(2))
}

/// An echo request (`request`) or reply with `id`, `seq` and a body.
pub fn icmp_echo(
    src: IpAddr,
    dst: IpAddr,
    request: bool,
    id: u16,
    seq: u16,
    payload_len: usize,
) -> Vec<u8> {
    let ty = match (src.is_ipv4(), request) {
        (true, true) => 8,
        (true, false) => 0,
        (false, true) => 128,
        (false, false) => 129,
    };
    let mut rest = [0; 4];
    rest[..2].copy_from_slice(&id.to_be_bytes());
    rest[2..].copy_from_slice(&seq.to_be_bytes());
    let body: Vec<u8> = payload(payload_len).collect();
    icmp(src, dst, ty, 0, rest, &body)
}

/// Why [`verify_checksums`] rejected a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumError {
    Unparseable,
    Ipv4Header,
    Transport,
    QuotedIpv4Header,
    QuotedTransport,
}

/// Checks, by full recomputation, the IPv4 header checksum and the transport
/// checksum of a complete packet; for an ICMP error also the quoted packet's
/// IPv4 header checksum and, when the quote is complete, its transport
/// checksum. A zero UDP checksum passes over IPv4 and fails over IPv6.
pub fn verify_checksums(pkt: &[u8]) -> Result<(), ChecksumError> {
    let info = IpInfo::parse(pkt).map_err(|_| ChecksumError::Unparseable)?;
    verify_one(
        pkt,
        &info,
        ChecksumError::Ipv4Header,
        ChecksumError::Transport,
    )?;
    let icmp_proto = info.icmp_protocol();
    if info.protocol == icmp_proto && info.l4_len() >= 8 && info.fragment == Fragment::None {
        let ty = pkt[info.l4_offset];
        let kind = if info.is_v4() {
            IcmpKind::v4(ty)
        } else {
            IcmpKind::v6(ty)
        };
        if kind.is_error() {
            let quote = &pkt[info.l4_offset + 8..info.end];
            if let Ok(q) = IpInfo::parse_quoted(quote) {
                verify_one(
                    quote,
                    &q,
                    ChecksumError::QuotedIpv4Header,
                    ChecksumError::QuotedTransport,
                )?;
            }
        }
    }
    Ok(())
}

fn verify_one(
    pkt: &[u8],
    info: &IpInfo,
    header: ChecksumError,
    transport: ChecksumError,
) -> Result<(), ChecksumError> {
    if info.is_v4() && !is_valid(0, &pkt[..info.l4_offset]) {
        return Err(header);
    }
    // A quote cut short, or a fragment, cannot be checked.
    let declared = match pkt[0] >> 4 {
        4 => usize::from(u16::from_be_bytes([pkt[2], pkt[3]])),
        _ => 40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]])),
    };
    if info.end < declared || info.fragment != Fragment::None {
        return Ok(());
    }
    let l4 = &pkt[info.l4_offset..info.end];
    let pseudo = |p: u8| pseudo_header_sum(info.src, info.dst, p, l4.len() as u32);
    let ok = match info.protocol {
        proto::TCP => is_valid(pseudo(proto::TCP), l4),
        proto::UDP if l4.len() >= 8 && l4[6] == 0 && l4[7] == 0 => info.is_v4(),
        proto::UDP => is_valid(pseudo(proto::UDP), l4),
        proto::ICMP if info.is_v4() => is_valid(0, l4),
        proto::ICMPV6 if !info.is_v4() => is_valid(pseudo(proto::ICMPV6), l4),
        _ => true,
    };
    if ok { Ok(()) } else { Err(transport) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_verify_and_corruption_is_caught() {
        let a4: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b4: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let a6: SocketAddr = "[2001:db8::1]:1000".parse().unwrap();
        let b6: SocketAddr = "[2001:db8::2]:80".parse().unwrap();
        let packets = vec![
            tcp(a4, b4, 0x02, 10),
            tcp(a6, b6, 0x12, 0),
            udp(a4, b4, 33, true),
            udp(a4, b4, 33, false),
            udp(a6, b6, 3, true),
            icmp_echo(a4.ip(), b4.ip(), true, 7, 1, 9),
            icmp_echo(a6.ip(), b6.ip(), false, 7, 1, 9),
        ];
        for p in packets {
            assert_eq!(verify_checksums(&p), Ok(()), "{p:x?}");
            let mut bad = p.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x40;
            if p == udp(a4, b4, 33, false) {
                assert_eq!(
                    verify_checksums(&bad),
                    Ok(()),
                    "no checksum, nothing to catch"
                );
            } else {
                assert_eq!(
                    verify_checksums(&bad),
                    Err(ChecksumError::Transport),
                    "{p:x?}"
                );
            }
        }
        let mut v6_zero = udp(a6, b6, 3, true);
        v6_zero[46] = 0;
        v6_zero[47] = 0;
        assert_eq!(verify_checksums(&v6_zero), Err(ChecksumError::Transport));
    }
}
