//! Message-level helpers around hickory-proto: the raw header (readable even when
//! the rest is not), hand-built error replies, UDP size limits with truncation,
//! and reverse (PTR) names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::Edns;

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

/// Record data of a locally synthesised answer. Every answer record is owned by
/// the question's name (a compression pointer to offset 12) and has TTL
/// [`ANSWER_TTL`](super::ANSWER_TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rdata<'a> {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// A host name (validated, no trailing dot).
    Ptr(&'a str),
}

/// The OPT record of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyEdns {
    pub udp_payload: u16,
    pub dnssec_ok: bool,
}

/// Everything an answer of the stub consists of.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub id: u16,
    pub opcode: u8,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// 12-bit response code: the high 8 bits travel in the OPT record.
    pub rcode: u16,
    /// The raw question section of the query (see [`question_section`]).
    pub question: Option<&'a [u8]>,
    pub answers: &'a [Rdata<'a>],
    pub edns: Option<ReplyEdns>,
}

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// A compression pointer to the question's name, which always starts at offset 12.
const QNAME_POINTER: [u8; 2] = [0xc0, 0x0c];

/// The raw bytes of the first question (name, type, class) if its name is
/// written out in full, as every real query's is. Echoing these bytes returns
/// the question exactly as asked, letter case included.
pub fn question_section(query: &[u8]) -> Option<&[u8]> {
    let mut pos = HEADER_LEN;
    loop {
        let len = usize::from(*query.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        pos += 1 + len;
    }
    query.get(HEADER_LEN..pos + 4)
}

/// Writes `reply` into `out`, hand-encoded (hickory-proto only parses queries:
/// building and encoding a `Message` per answer cost more than the rest of the
/// stub together). If the answer would exceed `limit`, writes instead the header,
/// question and OPT with TC set and no records (RFC 2181 §9: a client seeing TC
/// retries over TCP). Returns whether the answer was truncated.
pub fn write_reply(reply: &Reply<'_>, limit: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    write_parts(reply, reply.answers, false, out);
    if out.len() <= limit {
        return false;
    }
    out.clear();
    write_parts(reply, &[], true, out);
    true
}

fn write_parts(reply: &Reply<'_>, answers: &[Rdata<'_>], truncated: bool, out: &mut Vec<u8>) {
    let mut flags = QR | (u16::from(reply.opcode & 0x0f) << 11) | 0x0080 /* RA */;
    if truncated {
        flags |= 0x0200;
    }
    if reply.recursion_desired {
        flags |= RD;
    }
    if reply.checking_disabled {
        flags |= CD;
    }
    flags |= reply.rcode & 0x0f;
    let qd = u16::from(reply.question.is_some());
    // Without a question there is no name to point at: no answers then.
    let answers = if reply.question.is_some() {
        answers
    } else {
        &[]
    };
    let an = answers.len() as u16;
    let ar = u16::from(reply.edns.is_some());
    out.extend_from_slice(&reply.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for count in [qd, an, 0, ar] {
        out.extend_from_slice(&count.to_be_bytes());
    }
    if let Some(q) = reply.question {
        out.extend_from_slice(q);
    }
    for answer in answers {
        out.extend_from_slice(&QNAME_POINTER);
        let rtype = match answer {
            Rdata::A(_) => TYPE_A,
            Rdata::Aaaa(_) => TYPE_AAAA,
            Rdata::Ptr(_) => TYPE_PTR,
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&super::ANSWER_TTL.to_be_bytes());
        match answer {
            Rdata::A(a) => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
            Rdata::Aaaa(a) => {
                out.extend_from_slice(&16u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
            Rdata::Ptr(name) => {
                let len = name.len() + 2;
                out.extend_from_slice(&(len as u16).to_be_bytes());
                for label in name.split('.') {
                    out.push(label.len() as u8);
                    out.extend_from_slice(label.as_bytes());
                }
                out.push(0);
            }
        }
    }
    if let Some(edns) = reply.edns {
        out.push(0); // root name
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&edns.udp_payload.max(512).to_be_bytes());
        out.push((reply.rcode >> 4) as u8); // extended rcode
        out.push(0); // version
        let ext_flags: u16 = if edns.dnssec_ok { 0x8000 } else { 0 };
        out.extend_from_slice(&ext_flags.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
    }
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
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, RecordType};

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

    fn sample_query(name: &str) -> Vec<u8> {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.set_edns(Edns::new());
        m.to_vec().unwrap()
    }

    #[test]
    fn question_section_is_the_raw_first_question() {
        let q = sample_query("Big.Corp.Example.");
        let section = question_section(&q).unwrap();
        assert_eq!(section.len(), 1 + 3 + 1 + 4 + 1 + 7 + 1 + 4);
        assert_eq!(&section[..4], b"\x03Big");
        assert_eq!(&section[section.len() - 4..], &[0, 1, 0, 1]);
        assert_eq!(question_section(&q[..20]), None);
        let mut pointer = q.clone();
        pointer[12] = 0xc0;
        assert_eq!(question_section(&pointer), None);
    }

    fn reply<'a>(q: &'a [u8], answers: &'a [Rdata<'a>]) -> Reply<'a> {
        Reply {
            id: 0x4242,
            opcode: 0,
            recursion_desired: true,
            checking_disabled: false,
            rcode: 0,
            question: question_section(q),
            answers,
            edns: Some(ReplyEdns {
                udp_payload: 1232,
                dnssec_ok: true,
            }),
        }
    }

    #[test]
    fn hand_encoded_answers_decode_with_hickory() {
        let q = sample_query("Big.Corp.Example.");
        let answers = [
            Rdata::A(Ipv4Addr::new(100, 96, 0, 1)),
            Rdata::Aaaa("fd00:2021:1111:8000::1".parse().unwrap()),
            Rdata::Ptr("app.corp.example"),
        ];
        let mut out = Vec::new();
        assert!(!write_reply(&reply(&q, &answers), 512, &mut out));
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
        assert!(!m.metadata.truncation && !m.metadata.authoritative);
        let big = Name::from_ascii("Big.Corp.Example.").unwrap();
        assert!(m.queries[0].name.eq_case(&big));
        assert_eq!(m.answers.len(), 3);
        assert!(m.answers.iter().all(|r| r.ttl == 1 && r.name.eq_case(&big)));
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(100, 96, 0, 1))));
        match &m.answers[2].data {
            RData::PTR(p) => assert_eq!(p.0, Name::from_ascii("app.corp.example.").unwrap()),
            other => panic!("{other:?}"),
        }
        let edns = m.edns.unwrap();
        assert_eq!(edns.max_payload(), 1232);
        assert!(edns.flags().dnssec_ok);
    }

    #[test]
    fn extended_rcodes_travel_in_the_opt_record() {
        let q = sample_query("a.example.");
        let mut r = reply(&q, &[]);
        r.rcode = 16; // BADVERS
        let mut out = Vec::new();
        write_reply(&r, 512, &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(u16::from(m.metadata.response_code), 16);
    }

    #[test]
    fn oversized_answers_are_truncated_with_tc_and_keep_question_and_opt() {
        let q = sample_query("big.corp.example.");
        let answers: Vec<Rdata<'_>> = (0..40u8)
            .map(|i| Rdata::A(Ipv4Addr::new(100, 96, 0, i)))
            .collect();
        let r = reply(&q, &answers);
        let mut out = Vec::new();
        assert!(!write_reply(&r, 4096, &mut out));
        let full = out.len();
        assert!(full > 512);
        assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 40);
        assert!(write_reply(&r, 512, &mut out));
        assert!(out.len() <= 512);
        let t = Message::from_vec(&out).unwrap();
        assert!(t.metadata.truncation);
        assert_eq!(t.metadata.id, 0x4242);
        assert!(t.answers.is_empty());
        assert_eq!(t.queries.len(), 1);
        assert!(t.edns.is_some());
        // Exactly at the limit is not truncated.
        assert!(!write_reply(&r, full, &mut out));
    }
}
