//! Client → real host: the destination proxy IP becomes the real IP and the
//! source port (or echo id) becomes the session's outside port.
//!
//! Order of checks, cheapest and most certain first: the packet must parse,
//! come from the client and go to a proxy IP; fragments, non-translatable
//! protocols and the client's own ICMP errors stop there; a later fragment
//! follows its first one (`fragments.rs`). Then the session:
//! an existing one is used as is (its real IP is pinned), otherwise the
//! mapping decides between a new session, ICMP prohibited (policy first, so
//! an unresolvable domain reveals nothing to a client that may not use it)
//! and ICMP unreachable. Nothing is written to the buffer before the verdict
//! is known to be `Forward`.

use std::net::IpAddr;

use super::client::ClientNat;
use super::flow::{self, Direction, Flow, Transport, classify, rewrite_port};
use super::fragments::DatagramKey;
use super::key::{InsideKey, Protocol};
use super::table::Lookup;
use super::time::Timestamp;
use super::verdict::{DropReason, IcmpError, NatEvent, Verdict};
use crate::constants::{is_proxy_v4, is_proxy_v6};
use crate::packet::ip::{self, Fragment, IpInfo};

impl ClientNat {
    /// Translates a packet the client sent, in place. `packet` is one IP
    /// packet; bytes past its IP length are ignored and left as they are.
    pub fn translate_outbound(&mut self, packet: &mut [u8], now: Timestamp) -> Verdict {
        match self.outbound(packet, now) {
            Ok(v) => v,
            Err(reason) => Verdict::Drop(reason),
        }
    }

    fn outbound(&mut self, pkt: &mut [u8], now: Timestamp) -> Result<Verdict, DropReason> {
        let info = IpInfo::parse(pkt)?;
        if !self.is_client_ip(info.src) {
            return Err(DropReason::SourceNotClient);
        }
        let to_proxy = match info.dst {
            IpAddr::V4(a) => is_proxy_v4(a),
            IpAddr::V6(a) => is_proxy_v6(a),
        };
        if !to_proxy {
            return Err(DropReason::NotProxyDestination);
        }
        if info.fragment == Fragment::Later {
            let real = self
                .fragments
                .get(&DatagramKey::of(&info), now)
                .ok_or(DropReason::Fragment)?;
            ip::set_dst(pkt, real);
            return Ok(Verdict::Forward);
        }
        let flow = match classify(pkt, &info, Direction::Outbound)? {
            Transport::Flow(f) => f,
            Transport::TranslatableIcmpError | Transport::OtherIcmpError => {
                return Err(DropReason::OutboundIcmpError);
            }
        };
        let key = InsideKey {
            protocol: flow.protocol,
            port: flow.src_port,
            proxy: info.dst,
        };
        let index = match self.table.lookup_inside(&key, now) {
            Lookup::Live(i) => {
                let s = self.table.session(i);
                if s.dst_port != flow.dst_port
                    && flow.protocol != Protocol::Icmp
                    && !self.filter_allows(info.dst, &flow)
                {
                    return Ok(self.reply(IcmpError::Prohibited, now));
                }
                i
            }
            Lookup::Expired | Lookup::Missing => match self.open_session(key, &flow, now)? {
                Ok(i) => i,
                Err(verdict) => return Ok(verdict),
            },
        };
        let s = *self.table.session(index);
        let pseudo = ip::set_dst(pkt, s.real);
        let field = if flow.protocol == Protocol::Icmp {
            flow::ECHO_ID
        } else {
            flow::SRC_PORT
        };
        rewrite_port(
            &mut pkt[info.l4_offset..info.end],
            flow.protocol,
            info.is_v4(),
            field,
            s.outside_port,
            pseudo,
        );
        self.table.touch_out(index, now, flow.fin, flow.rst);
        if info.fragment == Fragment::First {
            self.fragments.insert(DatagramKey::of(&info), s.real, now);
        }
        Ok(Verdict::Forward)
    }

    fn filter_allows(&self, proxy: IpAddr, flow: &Flow) -> bool {
        self.mappings
            .get(&proxy)
            .is_some_and(|m| m.mapping.filter.allows(flow.protocol, flow.dst_port))
    }

    /// Opens a session, or says why not: `Err` is a drop, `Ok(Err)` an ICMP
    /// answer (or its rate-limited drop).
    fn open_session(
        &mut self,
        key: InsideKey,
        flow: &Flow,
        now: Timestamp,
    ) -> Result<Result<u32, Verdict>, DropReason> {
        if flow.rst {
            return Err(DropReason::RstWithoutSession);
        }
        let Some(state) = self.mappings.get(&key.proxy) else {
            return Ok(Err(self.reply(IcmpError::UnknownProxy, now)));
        };
        if !state.mapping.filter.allows(flow.protocol, flow.dst_port) {
            return Ok(Err(self.reply(IcmpError::Prohibited, now)));
        }
        let Some(real) = state.mapping.real else {
            self.emit(
                key.proxy,
                NatEvent::ResolveUnmapped { proxy: key.proxy },
                now,
            );
            return Ok(Err(self.reply(IcmpError::NoRealAddress, now)));
        };
        if state.mapping.expires_at.is_some_and(|t| t <= now) {
            self.emit(
                key.proxy,
                NatEvent::RefreshExpired { proxy: key.proxy },
                now,
            );
        }
        let index = self.table.create(key, real, flow.dst_port, now)?;
        if let Some(state) = self.mappings.get_mut(&key.proxy) {
            state.last_used = now;
        }
        Ok(Ok(index))
    }
}
