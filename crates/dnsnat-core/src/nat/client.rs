//! `ClientNat`: the gateway's NAT state for one client.
//!
//! It owns the client's mappings (proxy IP → real IP, installed by the caller),
//! its session table, its ICMP error budget and a queue of events. The packet
//! paths live in `outbound.rs`, `inbound.rs` and `icmp_error.rs`; this file
//! holds the state and the control-plane operations.
//!
//! The struct is a sans-IO state machine in the style of Firezone's connlib
//! and quinn-proto: every call takes `now`, nothing happens between calls,
//! `poll_timeout` says when `handle_timeout` next has work and `poll_event`
//! hands out what the caller must act on.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::config::NatConfig;
use super::fragments::Fragments;
use super::mapping::{Mapping, MappingError, validate};
use super::rate_limit::RateLimiter;
use super::table::SessionTable;
use super::time::Timestamp;
use super::verdict::{DropReason, IcmpError, NatEvent, Verdict};

/// Events waiting to be polled; past this the newest are dropped (each kind
/// repeats on the next packet after `resolve_event_interval` anyway).
const MAX_QUEUED_EVENTS: usize = 1024;

#[derive(Debug)]
pub(crate) struct MappingState {
    pub mapping: Mapping,
    /// When the last `NatEvent` for this proxy IP was queued.
    pub last_event: Option<Timestamp>,
    /// When the mapping was installed or last opened a session: with the
    /// live sessions, what tells the policy whether a client still uses it.
    pub last_used: Timestamp,
}

/// The NAT of one client on the gateway.
#[derive(Debug)]
pub struct ClientNat {
    pub(crate) config: NatConfig,
    /// The client's tunnel IPs (one per family, usually).
    pub(crate) client_ips: Vec<IpAddr>,
    pub(crate) mappings: HashMap<IpAddr, MappingState>,
    pub(crate) table: SessionTable,
    pub(crate) fragments: Fragments,
    icmp_budget: RateLimiter,
    events: VecDeque<NatEvent>,
}

impl ClientNat {
    /// A NAT for the client whose tunnel addresses are `client_ips`.
    pub fn new(config: NatConfig, client_ips: &[IpAddr]) -> ClientNat {
        ClientNat {
            config,
            client_ips: client_ips.to_vec(),
            mappings: HashMap::new(),
            table: SessionTable::new(config),
            fragments: Fragments::new(config.max_fragmented_datagrams, config.fragment_ttl),
            icmp_budget: RateLimiter::new(config.icmp_errors_per_sec, config.icmp_error_burst),
            events: VecDeque::new(),
        }
    }

    /// Installs or replaces the mapping of `proxy`.
    ///
    /// A new real address applies to new sessions only; live sessions keep
    /// theirs. A narrower port filter ends, at once, the live sessions it no
    /// longer allows.
    pub fn set_mapping(
        &mut self,
        proxy: IpAddr,
        mapping: Mapping,
        now: Timestamp,
    ) -> Result<(), MappingError> {
        validate(proxy, &mapping)?;
        let (last_event, last_used) = match self.mappings.get(&proxy) {
            Some(old) => {
                if old.mapping.filter != mapping.filter {
                    let filter = &mapping.filter;
                    self.table.remove_through(proxy, now, |s| {
                        !filter.allows(s.inside.protocol, s.dst_port)
                    });
                }
                (old.last_event, old.last_used)
            }
            None => (None, now),
        };
        self.mappings.insert(
            proxy,
            MappingState {
                mapping,
                last_event,
                last_used,
            },
        );
        Ok(())
    }

    /// Removes the mapping of `proxy` and every session through it (a
    /// resource removed by policy loses its traffic at once). Returns whether
    /// there was a mapping.
    pub fn remove_mapping(&mut self, proxy: IpAddr, now: Timestamp) -> bool {
        self.table.remove_through(proxy, now, |_| true);
        self.mappings.remove(&proxy).is_some()
    }

    /// How long the mapping of `proxy` has gone unused: zero while a session
    /// goes through it, else the time since it was installed or last opened
    /// one. `None` without a mapping.
    pub fn idle_for(&self, proxy: IpAddr, now: Timestamp) -> Option<std::time::Duration> {
        let state = self.mappings.get(&proxy)?;
        if self.table.has_sessions_through(proxy) {
            return Some(std::time::Duration::ZERO);
        }
        Some(now.saturating_since(state.last_used))
    }

    /// The mapping installed for `proxy`.
    pub fn mapping(&self, proxy: IpAddr) -> Option<&Mapping> {
        self.mappings.get(&proxy).map(|m| &m.mapping)
    }

    /// Number of live sessions (some may be past their deadline until the
    /// next `handle_timeout`).
    pub fn session_count(&self) -> usize {
        self.table.len()
    }

    /// Expires sessions whose deadline has passed. Returns how many ended.
    pub fn handle_timeout(&mut self, now: Timestamp) -> usize {
        self.fragments.prune(now);
        self.table.handle_timeout(now)
    }

    /// When `handle_timeout` should next be called, if ever. The answer may
    /// be early (a session that has since been used); never late.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.table.poll_timeout()
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<NatEvent> {
        self.events.pop_front()
    }

    pub(crate) fn is_client_ip(&self, ip: IpAddr) -> bool {
        self.client_ips.contains(&ip)
    }

    /// An ICMP error answer, if the budget allows one.
    pub(crate) fn reply(&mut self, error: IcmpError, now: Timestamp) -> Verdict {
        if self.icmp_budget.allow(now) {
            Verdict::Reply(error)
        } else {
            Verdict::Drop(DropReason::IcmpRateLimited)
        }
    }

    /// Queues `event` for `proxy` unless one was queued too recently.
    pub(crate) fn emit(&mut self, proxy: IpAddr, event: NatEvent, now: Timestamp) {
        let interval = self.config.resolve_event_interval;
        let Some(state) = self.mappings.get_mut(&proxy) else {
            return;
        };
        if state.last_event.is_some_and(|t| now < t + interval) {
            return;
        }
        if self.events.len() < MAX_QUEUED_EVENTS {
            state.last_event = Some(now);
            self.events.push_back(event);
        }
    }
}
