//! The gateway's NAT (docs/architecture.md#one-packet): per client, sessions
//! (protocol, client port or echo id, proxy IP) ⇄ (protocol, outside port, real IP).
//!
//! ```text
//! client ──(src client:cport, dst proxy:sport)──▶ translate_outbound ──(src client:oport, dst real:sport)──▶ kernel (masquerade)
//! client ◀─(src proxy:sport, dst client:cport)── translate_inbound  ◀─(src real:sport, dst client:oport)── kernel
//! ```
//!
//! How an event loop drives it (time is the caller's: see [`Timestamp`]):
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use dnsnat_core::nat::{ClientNat, Mapping, NatConfig, Timestamp, Verdict, MAX_REPLY_LEN};
//! use dnsnat_core::packet::build;
//!
//! let client: IpAddr = "100.64.0.2".parse().unwrap();
//! let proxy: IpAddr = "100.96.0.1".parse().unwrap();
//! let mut nat = ClientNat::new(NatConfig::default(), &[client]);
//! let now = Timestamp::from_secs(1); // e.g. Timestamp::from(Instant::now() - origin)
//! // The domain behind `proxy` resolved: install the mapping.
//! nat.set_mapping(proxy, Mapping::to("198.18.0.10".parse().unwrap()), now).unwrap();
//!
//! let mut packet = build::tcp(SocketAddr::new(client, 40000), SocketAddr::new(proxy, 443), 0x02, 0);
//! let mut reply = [0u8; MAX_REPLY_LEN];
//! match nat.translate_outbound(&mut packet, now) {
//!     Verdict::Forward => { /* write `packet` to the TUN device */ }
//!     Verdict::Drop(reason) => { /* counters[reason.index()] += 1 */ }
//!     Verdict::Reply(error) => {
//!         let len = error.write(&packet, &mut reply).unwrap();
//!         /* send reply[..len] back through the tunnel */
//!     }
//! }
//! // Later: sleep until `nat.poll_timeout()`, then `nat.handle_timeout(now)`,
//! // and act on `nat.poll_event()` (re-resolve a domain).
//! # assert_eq!(nat.session_count(), 1);
//! ```
//!
//! Layout, one concern per file:
//! - [`client`]: `ClientNat`, the state of one client and its control-plane API
//! - `outbound.rs`, `inbound.rs`: the two packet paths
//! - `icmp_error.rs`: translation of ICMP errors coming back, quote included
//! - `icmp_reply.rs`: ICMP errors the gateway generates (unreachable, prohibited)
//! - `table.rs`: sessions, both indexes, port allocation, expiry;
//!   `session.rs` the idle rules, `timers.rs` the lazy deadline queue,
//!   `tombstones.rs` the bounded memory of expired sessions
//! - `mapping.rs`: proxy → real mappings and port filters
//! - `flow.rs`: reading and rewriting the transport header
//! - `fragments.rs`: later fragments follow their first one
//! - `rate_limit.rs`: the ICMP error budget
//! - `verdict.rs`: outcomes, drop reasons, events; `time.rs`: `Timestamp`
//!
//! Hot path cost: one parse, one hash lookup, a few stores and checksum
//! adjustments; no allocation (maps and the slab grow only when sessions are
//! created, amortised).

mod by_proxy;
mod client;
mod config;
mod flow;
mod fragments;
mod icmp_error;
mod icmp_reply;
mod inbound;
mod key;
mod mapping;
mod outbound;
mod ports;
mod rate_limit;
mod recent;
mod session;
mod table;
mod time;
mod timers;
mod tombstones;
mod verdict;

#[cfg(test)]
mod tests;

pub use client::ClientNat;
pub use config::{IdleLimits, NatConfig};
pub use icmp_reply::MAX_REPLY_LEN;
pub use key::Protocol;
pub use mapping::{Mapping, MappingError, PortFilter, PortRule, PortRuleError};
pub use rate_limit::RateLimiter;
pub use time::Timestamp;
pub use verdict::{DropCounters, DropReason, IcmpError, NatEvent, Verdict};
