//! Translation of ICMP errors coming back from the real side: destination
//! unreachable (including "fragmentation needed"), packet too big and time
//! exceeded.
//!
//! Such an error quotes the packet that caused it, as it left the gateway:
//! from the client's tunnel IP and the outside port, to the real IP. The
//! quote identifies the session (outside key = protocol, quoted source port,
//! quoted destination). The client must see an error about the packet *it*
//! sent, so the quote is translated back (destination real → proxy IP, source
//! port → client port, the quoted checksums patched) and the error is made to
//! come from the proxy IP, whoever sent it: the client accepts nothing from
//! this gateway but proxy IPs, and a router's address would mean nothing to it.
//!
//! Every word changed inside the quote is also covered by the outer ICMP
//! checksum, so the deltas are summed and applied to it once. All rewritten
//! fields sit at even offsets from the start of the ICMP message (the quote
//! starts at offset 8, IPv4 headers are multiples of 4 bytes, IPv6 extension
//! headers of 8), which RFC 1624 arithmetic requires.
//!
//! Errors do not refresh the session: a stream of "unreachable" must not keep
//! a dead flow alive.

use super::client::ClientNat;
use super::flow::{self, rewrite_port};
use super::key::{OutsideKey, Protocol};
use super::table::Lookup;
use super::time::Timestamp;
use super::verdict::{DropReason, Verdict};
use crate::packet::checksum::{Delta, adjust_at, get_u16};
use crate::packet::icmp::{self, IcmpKind};
use crate::packet::ip::{self, Fragment, IpInfo};
use crate::packet::proto;

/// Offset of the IPv4 header checksum.
const V4_HEADER_CHECKSUM: usize = 10;

impl ClientNat {
    pub(crate) fn translate_icmp_error(
        &mut self,
        pkt: &mut [u8],
        info: &IpInfo,
        now: Timestamp,
    ) -> Result<Verdict, DropReason> {
        let v4 = info.is_v4();
        let quote_start = info.l4_offset + icmp::HEADER_LEN;
        let quote = IpInfo::parse_quoted(&pkt[quote_start..info.end])
            .map_err(|_| DropReason::MalformedQuote)?;
        if quote.is_v4() != v4 || quote.fragment == Fragment::Later {
            return Err(DropReason::MalformedQuote);
        }
        if quote.src != info.dst {
            return Err(DropReason::IcmpErrorNoMatch);
        }
        let ql4 = quote_start + quote.l4_offset;
        let qend = quote_start + quote.end;
        let (protocol, field) = match quote.protocol {
            proto::TCP => (Protocol::Tcp, flow::SRC_PORT),
            proto::UDP => (Protocol::Udp, flow::SRC_PORT),
            p if p == quote.icmp_protocol() => {
                let ty = *pkt
                    .get(ql4)
                    .filter(|_| ql4 < qend)
                    .ok_or(DropReason::MalformedQuote)?;
                let kind = if v4 {
                    IcmpKind::v4(ty)
                } else {
                    IcmpKind::v6(ty)
                };
                if kind != IcmpKind::EchoRequest {
                    return Err(DropReason::IcmpErrorNoMatch);
                }
                (Protocol::Icmp, flow::ECHO_ID)
            }
            _ => return Err(DropReason::IcmpErrorNoMatch),
        };
        if ql4 + field + 2 > qend {
            return Err(DropReason::MalformedQuote);
        }
        let key = OutsideKey {
            protocol,
            port: get_u16(pkt, ql4 + field),
            real: quote.dst,
        };
        let index = match self.table.lookup_outside(&key, now) {
            Lookup::Live(i) => i,
            Lookup::Expired => return Err(DropReason::ExpiredSession),
            Lookup::Missing => return Err(DropReason::IcmpErrorNoMatch),
        };
        let s = *self.table.session(index);

        // The quoted packet: destination back to the proxy IP (patching the
        // quoted IPv4 header checksum), then the quoted port and checksum.
        let mut outer = Delta::ZERO;
        let qbuf = &mut pkt[quote_start..info.end];
        let old_header_ck = if v4 {
            get_u16(qbuf, V4_HEADER_CHECKSUM)
        } else {
            0
        };
        let addr = ip::set_dst(qbuf, s.inside.proxy);
        outer = outer.plus(addr);
        if v4 {
            outer = outer.word(old_header_ck, get_u16(qbuf, V4_HEADER_CHECKSUM));
        }
        let l4 = &mut qbuf[quote.l4_offset..quote.end];
        outer = outer.plus(rewrite_port(l4, protocol, v4, field, s.inside.port, addr));

        // The outer packet: from the proxy IP, to the client as before.
        let outer_addr = ip::set_src(pkt, s.inside.proxy);
        if !v4 {
            outer = outer.plus(outer_addr);
        }
        adjust_at(pkt, info.l4_offset + icmp::CHECKSUM_OFFSET, outer);
        Ok(Verdict::Forward)
    }
}
