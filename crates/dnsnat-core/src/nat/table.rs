//! The session table of one client: storage, both indexes, port allocation,
//! expiry. It knows nothing about packets; `ClientNat` feeds it keys and flags.
//!
//! Sessions live in a slab (a `Vec` of slots plus a free list) and the two
//! hash maps point into it by index, so a session is stored once and both
//! directions find it with one hash lookup. Slots carry a generation so the
//! lazy timer queue can tell a reused slot from the session it was queued for.
//!
//! Expiry is enforced in two places: `handle_timeout` removes sessions whose
//! deadline passed, and every lookup checks the deadline too, so a packet that
//! arrives after a deadline but before the next `handle_timeout` is still
//! treated as belonging to an expired session.

use std::collections::HashMap;
use std::net::IpAddr;

use super::by_proxy::ProxyIndex;
use super::config::NatConfig;
use super::key::{InsideKey, OutsideKey};
use super::ports::{PortRng, choose_port};
use super::session::{Limits, Session};
use super::time::Timestamp;
use super::timers::{Entry, Timers};
use super::tombstones::Tombstones;
use super::verdict::DropReason;

/// Result of looking a key up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    Live(u32),
    /// There was a session and it has expired (now, or recently).
    Expired,
    Missing,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    session: Option<Session>,
}

#[derive(Debug)]
pub(crate) struct SessionTable {
    config: NatConfig,
    limits: Limits,
    slots: Vec<Slot>,
    free: Vec<u32>,
    inside: HashMap<InsideKey, u32>,
    outside: HashMap<OutsideKey, u32>,
    /// Sessions by proxy IP: removing a mapping touches only its sessions.
    by_proxy: ProxyIndex,
    timers: Timers,
    tombstones: Tombstones,
    rng: PortRng,
}

impl SessionTable {
    pub fn new(config: NatConfig) -> SessionTable {
        SessionTable {
            config,
            limits: Limits::from(&config.limits),
            slots: Vec::new(),
            free: Vec::new(),
            inside: HashMap::new(),
            outside: HashMap::new(),
            by_proxy: ProxyIndex::default(),
            timers: Timers::default(),
            tombstones: Tombstones::new(config.max_tombstones, config.tombstone_ttl),
            rng: PortRng::new(random_seed()),
        }
    }

    pub fn len(&self) -> usize {
        self.inside.len()
    }

    pub fn session(&self, index: u32) -> &Session {
        // Indexes come from the maps, which only hold live slots.
        self.slots[index as usize]
            .session
            .as_ref()
            .expect("index of a live session")
    }

    fn session_mut(&mut self, index: u32) -> &mut Session {
        self.slots[index as usize]
            .session
            .as_mut()
            .expect("index of a live session")
    }

    pub fn lookup_inside(&mut self, key: &InsideKey, now: Timestamp) -> Lookup {
        match self.inside.get(key) {
            Some(&i) => self.check_live(i, now),
            None => Lookup::Missing,
        }
    }

    pub fn lookup_outside(&mut self, key: &OutsideKey, now: Timestamp) -> Lookup {
        match self.outside.get(key) {
            Some(&i) => self.check_live(i, now),
            None if self.tombstones.contains(key) => Lookup::Expired,
            None => Lookup::Missing,
        }
    }

    fn check_live(&mut self, index: u32, now: Timestamp) -> Lookup {
        if self.session(index).deadline(&self.limits) <= now {
            self.remove(index, now);
            Lookup::Expired
        } else {
            Lookup::Live(index)
        }
    }

    /// Opens a session for `inside` towards `real`, keeping the client's port
    /// when it is free towards that real address.
    pub fn create(
        &mut self,
        inside: InsideKey,
        real: IpAddr,
        dst_port: u16,
        now: Timestamp,
    ) -> Result<u32, DropReason> {
        debug_assert!(!self.inside.contains_key(&inside));
        if self.len() >= self.config.max_sessions {
            // Sessions past their deadline may still be waiting for the
            // caller's next `handle_timeout`; they do not count.
            self.handle_timeout(now);
            if self.len() >= self.config.max_sessions {
                return Err(DropReason::SessionLimit);
            }
        }
        let outside = &self.outside;
        let protocol = inside.protocol;
        let port = choose_port(protocol, inside.port, &mut self.rng, |port| {
            outside.contains_key(&OutsideKey {
                protocol,
                port,
                real,
            })
        })
        .ok_or(DropReason::PortsExhausted)?;
        let mut session = Session {
            inside,
            outside_port: port,
            real,
            dst_port,
            last_out: now,
            last_in: None,
            fin_out: false,
            fin_in: false,
            queued: Timestamp::ZERO,
        };
        session.queued = session.deadline(&self.limits);
        let outside = session.outside();
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].session = Some(session);
                i
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    session: Some(session),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.inside.insert(inside, index);
        self.outside.insert(outside, index);
        self.by_proxy.insert(index, inside.proxy);
        self.tombstones.remove(&outside);
        self.timers.push(Entry {
            at: session.queued,
            index,
            generation: self.slots[index as usize].generation,
        });
        self.maybe_compact();
        Ok(index)
    }

    /// Records an outbound packet. `fin`/`rst` are the TCP flags seen.
    pub fn touch_out(&mut self, index: u32, now: Timestamp, fin: bool, rst: bool) {
        if rst {
            self.remove(index, now);
            return;
        }
        let s = self.session_mut(index);
        s.last_out = now;
        s.fin_out |= fin;
        self.requeue_if_earlier(index);
    }

    /// Records an inbound packet.
    pub fn touch_in(&mut self, index: u32, now: Timestamp, fin: bool, rst: bool) {
        if rst {
            self.remove(index, now);
            return;
        }
        let s = self.session_mut(index);
        s.last_in = Some(now);
        s.fin_in |= fin;
        self.requeue_if_earlier(index);
    }

    /// Pushes a new timer entry when activity made the deadline earlier
    /// (only the FIN rule can). Later deadlines are picked up lazily.
    fn requeue_if_earlier(&mut self, index: u32) {
        let limits = self.limits;
        let slot = &mut self.slots[index as usize];
        let generation = slot.generation;
        let Some(s) = slot.session.as_mut() else {
            return;
        };
        let deadline = s.deadline(&limits);
        if deadline < s.queued {
            s.queued = deadline;
            self.timers.push(Entry {
                at: deadline,
                index,
                generation,
            });
        }
    }

    /// Ends a session: both keys go, the outside key is remembered.
    pub fn remove(&mut self, index: u32, now: Timestamp) {
        let slot = &mut self.slots[index as usize];
        let Some(session) = slot.session.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.inside.remove(&session.inside);
        self.by_proxy.remove(index, session.inside.proxy);
        let outside = session.outside();
        self.outside.remove(&outside);
        self.tombstones.insert(outside, now);
    }

    /// Removes the sessions through `proxy` for which `pred` holds (a mapping
    /// removed or narrowed). Costs the sessions of `proxy`, not the table.
    pub fn remove_through(
        &mut self,
        proxy: IpAddr,
        now: Timestamp,
        mut pred: impl FnMut(&Session) -> bool,
    ) {
        for i in self.by_proxy.slots(proxy) {
            if pred(self.session(i)) {
                self.remove(i, now);
            }
        }
    }

    /// Whether any session goes through `proxy` (it may be past its deadline
    /// until the next `handle_timeout`).
    pub fn has_sessions_through(&self, proxy: IpAddr) -> bool {
        self.by_proxy.contains(proxy)
    }

    /// Expires what is due. Returns how many sessions ended.
    pub fn handle_timeout(&mut self, now: Timestamp) -> usize {
        let limits = self.limits;
        let mut expired = 0;
        while let Some(entry) = self.timers.pop_due(now) {
            let slot = &mut self.slots[entry.index as usize];
            if slot.generation != entry.generation {
                continue;
            }
            let Some(s) = slot.session.as_mut() else {
                continue;
            };
            if s.queued != entry.at {
                continue; // superseded by an earlier entry
            }
            let deadline = s.deadline(&limits);
            if deadline <= now {
                self.remove(entry.index, now);
                expired += 1;
            } else {
                s.queued = deadline;
                self.timers.push(Entry {
                    at: deadline,
                    ..entry
                });
            }
        }
        self.tombstones.prune(now);
        self.maybe_compact();
        expired
    }

    /// The next time `handle_timeout` has work (possibly a little early).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.peek()
    }

    fn maybe_compact(&mut self) {
        if !self.timers.needs_compaction(self.len()) {
            return;
        }
        let live = self.slots.iter().enumerate().filter_map(|(i, slot)| {
            slot.session.as_ref().map(|s| Entry {
                at: s.queued,
                index: i as u32,
                generation: slot.generation,
            })
        });
        self.timers.rebuild(live);
    }

    #[cfg(test)]
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    #[cfg(test)]
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }
}

/// A seed that differs per table and per process, from the standard
/// library's per-process random hash keys (no clock, no I/O here).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::key::Protocol;
    use std::time::Duration;

    fn inside(port: u16, proxy: &str) -> InsideKey {
        InsideKey {
            protocol: Protocol::Udp,
            port,
            proxy: proxy.parse().unwrap(),
        }
    }

    fn real() -> IpAddr {
        "198.18.0.1".parse().unwrap()
    }

    #[test]
    fn keeps_port_then_tries_others() {
        let mut t = SessionTable::new(NatConfig::default());
        let now = Timestamp::from_secs(1);
        let a = t
            .create(inside(65535, "100.96.0.1"), real(), 53, now)
            .unwrap();
        assert_eq!(t.session(a).outside_port, 65535);
        // Same client port, another proxy IP on the same real IP: 65535 is
        // taken, so another port is chosen (never 0, not a UDP port).
        let b = t
            .create(inside(65535, "100.96.0.2"), real(), 53, now)
            .unwrap();
        assert_ne!(t.session(b).outside_port, 65535);
        assert_ne!(t.session(b).outside_port, 0);
        // A different real IP does not conflict.
        let c = t
            .create(
                inside(65535, "100.96.0.3"),
                "198.18.0.2".parse().unwrap(),
                53,
                now,
            )
            .unwrap();
        assert_eq!(t.session(c).outside_port, 65535);
    }

    #[test]
    fn removing_a_proxy_ips_sessions_leaves_the_others() {
        let mut t = SessionTable::new(NatConfig::default());
        let now = Timestamp::from_secs(1);
        for p in 1..=50u16 {
            t.create(inside(p, "100.96.0.1"), real(), 53, now).unwrap();
            t.create(inside(p, "100.96.0.2"), real(), 54, now).unwrap();
        }
        let a: IpAddr = "100.96.0.1".parse().unwrap();
        let b: IpAddr = "100.96.0.2".parse().unwrap();
        t.remove_through(b, now, |s| s.inside.port % 2 == 0);
        assert_eq!(t.len(), 75);
        t.remove_through(a, now, |_| true);
        assert_eq!(t.len(), 25);
        assert!(!t.has_sessions_through(a));
        assert!(t.has_sessions_through(b));
        assert!(matches!(
            t.lookup_inside(&inside(1, "100.96.0.2"), now),
            Lookup::Live(_)
        ));
    }

    #[test]
    fn a_full_port_space_is_a_quick_counted_drop() {
        let mut t = SessionTable::new(NatConfig::default());
        let now = Timestamp::from_secs(1);
        // Every UDP port towards one real address, from one proxy IP.
        for p in 1..=u16::MAX {
            t.create(inside(p, "100.96.0.1"), real(), 53, now).unwrap();
        }
        // A second proxy IP on the same address finds no port; a third on
        // another address is unaffected.
        assert_eq!(
            t.create(inside(7, "100.96.0.2"), real(), 53, now),
            Err(DropReason::PortsExhausted)
        );
        let other: IpAddr = "198.18.0.9".parse().unwrap();
        assert!(t.create(inside(7, "100.96.0.3"), other, 53, now).is_ok());
    }

    #[test]
    fn session_limit() {
        let cfg = NatConfig {
            max_sessions: 2,
            ..NatConfig::default()
        };
        let mut t = SessionTable::new(cfg);
        let now = Timestamp::ZERO;
        t.create(inside(1, "100.96.0.1"), real(), 1, now).unwrap();
        t.create(inside(2, "100.96.0.1"), real(), 1, now).unwrap();
        assert_eq!(
            t.create(inside(3, "100.96.0.1"), real(), 1, now),
            Err(DropReason::SessionLimit)
        );
        // Expired sessions make room even before the caller's sweep.
        let later = now + Duration::from_secs(60);
        assert!(t.create(inside(3, "100.96.0.1"), real(), 1, later).is_ok());
    }

    #[test]
    fn expiry_tombstones_and_slot_reuse() {
        let mut t = SessionTable::new(NatConfig::default());
        let t0 = Timestamp::from_secs(1);
        let a = t
            .create(inside(1000, "100.96.0.1"), real(), 53, t0)
            .unwrap();
        let out = t.session(a).outside();
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        t.touch_in(a, t0 + Duration::from_secs(30), false, false);
        // The unanswered limit no longer applies; the entry is requeued.
        assert_eq!(t.handle_timeout(t0 + Duration::from_secs(60)), 0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(150)));
        assert_eq!(t.handle_timeout(t0 + Duration::from_secs(150)), 1);
        assert_eq!(t.len(), 0);
        assert_eq!(t.lookup_outside(&out, t0), Lookup::Expired);
        // The slot is reused with a new generation; the old timer entry, if
        // any were left, would not touch the new session.
        let b = t
            .create(
                inside(1000, "100.96.0.1"),
                real(),
                53,
                t0 + Duration::from_secs(200),
            )
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(t.lookup_outside(&out, t0), Lookup::Live(b));
    }

    #[test]
    fn lookup_enforces_deadline_without_handle_timeout() {
        let mut t = SessionTable::new(NatConfig::default());
        let t0 = Timestamp::from_secs(1);
        let key = inside(1000, "100.96.0.1");
        t.create(key, real(), 53, t0).unwrap();
        assert!(matches!(
            t.lookup_inside(&key, t0 + Duration::from_secs(59)),
            Lookup::Live(_)
        ));
        assert_eq!(
            t.lookup_inside(&key, t0 + Duration::from_secs(60)),
            Lookup::Expired
        );
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn stale_timer_entries_are_compacted() {
        let mut t = SessionTable::new(NatConfig::default());
        let now = Timestamp::from_secs(1);
        for round in 0..5u16 {
            for p in 1..=1000u16 {
                let i = t.create(inside(p, "100.96.0.1"), real(), 53, now).unwrap();
                let _ = round;
                t.touch_out(i, now, false, true); // RST: removed at once
            }
        }
        assert_eq!(t.len(), 0);
        assert!(t.timer_entries() <= 1024 + 1, "{}", t.timer_entries());
        assert!(t.tombstone_count() <= NatConfig::default().max_tombstones);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap as Model;

        #[derive(Debug, Clone)]
        enum Op {
            /// Outbound packet on key k (opens the session if needed).
            Out { k: u8, fin: bool, rst: bool },
            /// Inbound packet on key k (ignored without a session).
            In { k: u8, fin: bool, rst: bool },
            /// Time passes, then the caller's timer fires (or not).
            Advance { millis: u32, fire: bool },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u8..6, any::<bool>(), prop::bool::weighted(0.05))
                    .prop_map(|(k, fin, rst)| Op::Out { k, fin, rst }),
                (0u8..6, any::<bool>(), prop::bool::weighted(0.05))
                    .prop_map(|(k, fin, rst)| Op::In { k, fin, rst }),
                (
                    // Exact limits too, so off-by-one deadlines show.
                    prop_oneof![
                        0u32..200_000,
                        Just(5_000),
                        Just(60_000),
                        Just(120_000),
                        Just(1)
                    ],
                    any::<bool>()
                )
                    .prop_map(|(millis, fire)| Op::Advance { millis, fire }),
            ]
        }

        /// The idle rules of docs/architecture.md#one-packet, written out independently of `Session`.
        #[derive(Debug, Clone, Copy)]
        struct M {
            last_out: u64,
            last_in: Option<u64>,
            fin_out: bool,
            fin_in: bool,
        }

        fn model_deadline(m: &M, idle: u64) -> u64 {
            let last = m.last_in.map_or(m.last_out, |i| i.max(m.last_out));
            let mut d = last + idle;
            if m.last_in.is_none() {
                d = d.min(m.last_out + 60_000);
            }
            if m.fin_out && m.fin_in {
                d = d.min(last + 5_000);
            }
            d
        }

        fn key(k: u8) -> InsideKey {
            InsideKey {
                protocol: if k.is_multiple_of(2) {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
                port: 1000 + u16::from(k),
                proxy: "100.96.0.1".parse().unwrap(),
            }
        }

        fn idle(k: u8) -> u64 {
            if k.is_multiple_of(2) {
                120_000
            } else {
                7_440_000
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// The lazy timer queue expires exactly the sessions the rules
            /// say, whenever the caller's timer fires, and lookups agree with
            /// the rules even when it does not.
            #[test]
            fn table_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
                let mut t = SessionTable::new(NatConfig::default());
                let mut model: Model<u8, M> = Model::new();
                let mut now_ms = 1_000u64;
                for op in ops {
                    let now = Timestamp::from_millis(now_ms);
                    // Drop from the model what is expired at `now`.
                    model.retain(|k, m| model_deadline(m, idle(*k)) > now_ms);
                    match op {
                        Op::Out { k, fin, rst } => {
                            let i = match t.lookup_inside(&key(k), now) {
                                Lookup::Live(i) => i,
                                _ => {
                                    prop_assert!(!model.contains_key(&k));
                                    if rst { continue; }
                                    t.create(key(k), real(), 80, now).unwrap()
                                }
                            };
                            let m = model.entry(k).or_insert(M { last_out: now_ms, last_in: None, fin_out: false, fin_in: false });
                            m.last_out = now_ms;
                            m.fin_out |= fin;
                            t.touch_out(i, now, fin, rst);
                            if rst { model.remove(&k); }
                        }
                        Op::In { k, fin, rst } => {
                            let Some(out) = model.get(&k).map(|_| {
                                let i = t.inside[&key(k)];
                                t.session(i).outside()
                            }) else {
                                continue;
                            };
                            let Lookup::Live(i) = t.lookup_outside(&out, now) else {
                                prop_assert!(false, "model has {k}, table does not");
                                unreachable!()
                            };
                            let m = model.get_mut(&k).unwrap();
                            m.last_in = Some(now_ms);
                            m.fin_in |= fin;
                            t.touch_in(i, now, fin, rst);
                            if rst { model.remove(&k); }
                        }
                        Op::Advance { millis, fire } => {
                            now_ms += u64::from(millis);
                            if fire {
                                let now = Timestamp::from_millis(now_ms);
                                t.handle_timeout(now);
                                model.retain(|k, m| model_deadline(m, idle(*k)) > now_ms);
                                prop_assert_eq!(t.len(), model.len());
                                let next = model.iter().map(|(k, m)| model_deadline(m, idle(*k))).min();
                                if let Some(next) = next {
                                    let polled = t.poll_timeout().unwrap();
                                    prop_assert!(polled <= Timestamp::from_millis(next));
                                    prop_assert!(polled > now);
                                }
                            }
                        }
                    }
                    prop_assert!(t.len() >= model.len());
                }
            }
        }
    }
}
