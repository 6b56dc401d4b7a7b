//! Message-level helpers around hickory-proto: the raw header (readable even when
//! the rest is not), hand-built error replies, UDP size limits with truncation,
//! and reverse (PTR) names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Message};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

pub const HEADER_LEN: usize = 12;
/// The UDP payload every DNS client accepts without EDNS (RFC 1035).
pub const CLASSIC_UDP_LIMIT: usize = 512;

pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;

const QR: u16 = 0x8000;
const OPCODE_MASK: u16 = 0x7800;
const RD: u16 = 0x0100;
const CD: u16 = 0x0010;

/// The fixed 12-byte header, read without trusting anything after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
}

impl RawHeader {
    pub fn read(bytes: &[u8]) -> Option<Self> {
        let h = bytes.get(..HEADER_LEN)?;
        Some(Self {
            id: u16::from_be_bytes([h[0], h[1]]),
            flags: u16::from_be_bytes([h[2], h[3]]),
            qdcount: u16::from_be_bytes([h[4], h[5]]),
        })
    }

    pub fn is_response(&self) -> bool {
        self.flags & QR != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags & OPCODE_MASK) >> 11) as u8
    }

    /// Writes a bare reply (no sections) with this header's id, opcode, RD and CD
    /// echoed and the given rcode: FORMERR for a query whose body cannot be read.
    pub fn write_error(&self, rcode: u8, out: &mut Vec<u8>) {
        let flags = QR | (self.flags & (OPCODE_MASK | RD | CD)) | u16::from(rcode & 0x0f);
        out.clear();
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0; 8]);
    }
}

/// The largest UDP answer the client accepts: 512 bytes, or its EDNS payload
/// size when it advertised one (sizes below 512 count as 512, RFC 6891 §6.2.5).
pub fn udp_limit(edns: Option<&Edns>) -> usize {
    edns.map_or(CLASSIC_UDP_LIMIT, |e| {
        usize::from(e.max_payload()).max(CLASSIC_UDP_LIMIT)
    })
}

/// Encodes `msg` into `out`; if it exceeds `limit`, encodes instead the header,
/// question and OPT with TC set and no records (RFC 2181 §9: a client seeing TC
/// retries over TCP). Returns whether the answer was truncated.
pub fn encode_limited(msg: &Message, limit: usize, out: &mut Vec<u8>) -> Result<bool, ProtoError> {
    out.clear();
    msg.emit(&mut BinEncoder::new(out))?;
    if out.len() <= limit {
        return Ok(false);
    }
    out.clear();
    msg.truncate().emit(&mut BinEncoder::new(out))?;
    Ok(true)
}

/// The address named by a reverse name (`4.3.2.1.in-addr.arpa`, or 32 nibbles
/// under `ip6.arpa`), given as lower-case labels, left to right. Partial names
/// (a zone rather than one address) and non-canonical spellings give `None`.
pub fn reverse_ip(labels: &[&[u8]]) -> Option<IpAddr> {
    match labels {
        [a, b, c, d, in_addr, arpa] if *in_addr == b"in-addr" && *arpa == b"arpa" => {
            let octet = |l: &[u8]| -> Option<u8> {
                let s = std::str::from_utf8(l).ok()?;
                let v: u8 = s.parse().ok()?;
                // Reject `01`, `+1` and the like: one spelling per address.
                (v.to_string() == s).then_some(v)
            };
            Some(IpAddr::V4(Ipv4Addr::new(
                octet(d)?,
                octet(c)?,
                octet(b)?,
                octet(a)?,
            )))
        }
        _ if labels.len() == 34 && labels[32] == b"ip6" && labels[33] == b"arpa" => {
            let mut v: u128 = 0;
            for label in labels[..32].iter().rev() {
                let [c] = label else { return None };
                let nibble = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return None,
                };
                v = (v << 4) | u128::from(nibble);
            }
            Some(IpAddr::V6(Ipv6Addr::from(v)))
        }
        _ => None,
    }
}

/// The reverse name of an address, without a trailing dot.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0f, byte >> 4] {
                    s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                    s.push('.');
                }
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn labels(s: &str) -> Vec<&[u8]> {
        s.split('.').map(str::as_bytes).collect()
    }

    #[test]
    fn reverse_names_round_trip() {
        for ip in [
            "100.96.0.1".parse::<IpAddr>().unwrap(),
            "100.127.255.254".parse().unwrap(),
            "fd00:2021:1111:8000::1f:abcd".parse().unwrap(),
        ] {
            let name = reverse_name(ip);
            assert_eq!(reverse_ip(&labels(&name)), Some(ip), "{name}");
        }
        assert_eq!(
            reverse_name("1.2.3.4".parse().unwrap()),
            "4.3.2.1.in-addr.arpa"
        );
    }

    #[test]
    fn partial_or_odd_reverse_names_are_not_addresses() {
        assert_eq!(reverse_ip(&labels("2.1.in-addr.arpa")), None);
        assert_eq!(reverse_ip(&labels("04.3.2.1.in-addr.arpa")), None);
        assert_eq!(reverse_ip(&labels("256.3.2.1.in-addr.arpa")), None);
        assert_eq!(reverse_ip(&labels("4.3.2.1.in-addr.example")), None);
        let mut v6 = reverse_name("fd00::1".parse().unwrap());
        v6 = v6.replacen('1', "g", 1);
        assert_eq!(reverse_ip(&labels(&v6)), None);
        assert_eq!(reverse_ip(&labels("1.0.ip6.arpa")), None);
    }

    #[test]
    fn header_and_error_reply() {
        // id 0xbeef, RD + CD set, opcode 2 (STATUS), 1 question.
        let q = [0xbe, 0xef, 0x11, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        let h = RawHeader::read(&q).unwrap();
        assert!(!h.is_response());
        assert_eq!(h.opcode(), 2);
        assert_eq!(h.qdcount, 1);
        let mut out = vec![1, 2, 3];
        h.write_error(RCODE_FORMERR, &mut out);
        assert_eq!(out, [0xbe, 0xef, 0x91, 0x11, 0, 0, 0, 0, 0, 0, 0, 0]);
        let parsed = Message::from_vec(&out).unwrap();
        assert_eq!(parsed.metadata.id, 0xbeef);
        assert!(parsed.metadata.recursion_desired);
        assert!(parsed.metadata.checking_disabled);
        assert_eq!(
            parsed.metadata.response_code,
            hickory_proto::op::ResponseCode::FormErr
        );
        assert_eq!(RawHeader::read(&q[..11]), None);
    }

    #[test]
    fn udp_limit_follows_edns() {
        assert_eq!(udp_limit(None), 512);
        let mut e = Edns::new();
        e.set_max_payload(1232);
        assert_eq!(udp_limit(Some(&e)), 1232);
        e.set_max_payload(100);
        assert_eq!(udp_limit(Some(&e)), 512);
    }

    #[test]
    fn oversized_answers_are_truncated_with_tc_and_keep_question_and_opt() {
        let name = Name::from_ascii("big.corp.example.").unwrap();
        let mut msg = Message::response(7, hickory_proto::op::OpCode::Query);
        msg.add_query(Query::query(name.clone(), RecordType::A));
        for i in 0..40u8 {
            msg.add_answer(Record::from_rdata(
                name.clone(),
                1,
                RData::A(A(Ipv4Addr::new(100, 96, 0, i))),
            ));
        }
        msg.set_edns(Edns::new());
        let mut out = Vec::new();
        assert!(!encode_limited(&msg, 4096, &mut out).unwrap());
        let full = out.len();
        assert!(full > 512);
        assert!(encode_limited(&msg, 512, &mut out).unwrap());
        assert!(out.len() <= 512);
        let t = Message::from_vec(&out).unwrap();
        assert!(t.metadata.truncation);
        assert_eq!(t.metadata.id, 7);
        assert!(t.answers.is_empty());
        assert_eq!(t.queries.len(), 1);
        assert!(t.edns.is_some());
        // Exactly at the limit is not truncated.
        assert!(!encode_limited(&msg, full, &mut out).unwrap());
    }
}
