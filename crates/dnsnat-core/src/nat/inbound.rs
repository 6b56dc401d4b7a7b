//! Real host → client: the source real IP becomes the proxy IP again and the
//! destination port (or echo id) becomes the client's.
//!
//! Only packets that match a live session pass. A packet for a session that
//! expired is dropped as `ExpiredSession`, one that never had a session as
//! `NoSession`: nothing is ever forwarded untranslated, because on a dnsnat
//! gateway there is no other traffic a client may receive.

use super::client::ClientNat;
use super::flow::{self, Direction, Transport, classify, rewrite_port};
use super::fragments::DatagramKey;
use super::key::{OutsideKey, Protocol};
use super::table::Lookup;
use super::time::Timestamp;
use super::verdict::{DropReason, Verdict};
use crate::packet::ip::{self, Fragment, IpInfo};

impl ClientNat {
    /// Translates a packet addressed to the client, in place (one IP packet;
    /// bytes past its IP length are ignored).
    pub fn translate_inbound(&mut self, packet: &mut [u8], now: Timestamp) -> Verdict {
        match self.inbound(packet, now) {
            Ok(v) => v,
            Err(reason) => Verdict::Drop(reason),
        }
    }

    fn inbound(&mut self, pkt: &mut [u8], now: Timestamp) -> Result<Verdict, DropReason> {
        let info = IpInfo::parse(pkt)?;
        if !self.is_client_ip(info.dst) {
            return Err(DropReason::DestinationNotClient);
        }
        if info.fragment == Fragment::Later {
            let proxy = self
                .fragments
                .get(&DatagramKey::of(&info), now)
                .ok_or(DropReason::Fragment)?;
            ip::set_src(pkt, proxy);
            return Ok(Verdict::Forward);
        }
        let flow = match classify(pkt, &info, Direction::Inbound)? {
            Transport::Flow(f) => f,
            // A fragmented ICMP error: too rare to track.
            Transport::TranslatableIcmpError if info.fragment == Fragment::First => {
                return Err(DropReason::Fragment);
            }
            Transport::TranslatableIcmpError => return self.translate_icmp_error(pkt, &info, now),
            Transport::OtherIcmpError => return Err(DropReason::UnsupportedIcmp),
        };
        let key = OutsideKey {
            protocol: flow.protocol,
            port: flow.dst_port,
            real: info.src,
        };
        let index = match self.table.lookup_outside(&key, now) {
            Lookup::Live(i) => i,
            Lookup::Expired => return Err(DropReason::ExpiredSession),
            Lookup::Missing => return Err(DropReason::NoSession),
        };
        let s = *self.table.session(index);
        let pseudo = ip::set_src(pkt, s.inside.proxy);
        let field = if flow.protocol == Protocol::Icmp {
            flow::ECHO_ID
        } else {
            flow::DST_PORT
        };
        rewrite_port(
            &mut pkt[info.l4_offset..info.end],
            flow.protocol,
            info.is_v4(),
            field,
            s.inside.port,
            pseudo,
        );
        self.table.touch_in(index, now, flow.fin, flow.rst);
        if info.fragment == Fragment::First {
            self.fragments
                .insert(DatagramKey::of(&info), s.inside.proxy, now);
        }
        Ok(Verdict::Forward)
    }
}
