//! The client's per-key gate: what happens to packets for a (gateway, domain,
//! resource) while its NAT is being set up (docs/architecture.md#one-packet).
//!
//! The TypeScript state machine only says `buffer`, `pass`, `flush` or
//! `discard`; this holds the packets. A buffer is small (32 packets) because
//! what it protects is the *first* exchange of a connection: the SYN, the first
//! UDP datagram, the first echo. Oldest packets go first when it is full (the
//! newest are the ones an application is still waiting on), and a retransmitted
//! TCP SYN replaces the one it repeats instead of queueing a duplicate that the
//! server would answer twice.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::packet::ip::IpInfo;
use crate::packet::proto;
use crate::packet::tcp::{ACK, SYN};

/// Packets held per key.
pub const BUFFER_PACKETS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMode {
    Buffer,
    Pass,
}

/// What the caller does with a packet it offered to the gate.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Send it now.
    Pass,
    /// Held. `first` is true when the key had no packet waiting before: the
    /// caller tells the state machine an application is waiting.
    Buffered { first: bool, dropped_oldest: bool },
}

#[derive(Debug, Default)]
struct Gate {
    mode: Option<GateMode>,
    buffer: VecDeque<Vec<u8>>,
}

/// Gates by key. Keys the caller never gated start in `default_mode`.
#[derive(Debug)]
pub struct GateTable<K> {
    gates: HashMap<K, Gate>,
    default_mode: GateMode,
}

/// The (source port, destination, destination port) of a bare TCP SYN, which
/// identifies its retransmissions.
fn syn_identity(packet: &[u8]) -> Option<(u16, std::net::IpAddr, u16)> {
    let info = IpInfo::parse(packet).ok()?;
    if info.protocol != proto::TCP {
        return None;
    }
    let tcp = packet.get(info.l4_offset..info.l4_offset + 14)?;
    let flags = tcp[13];
    if flags & (SYN | ACK) != SYN {
        return None;
    }
    let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
    Some((sport, info.dst, dport))
}

impl<K: Eq + Hash + Clone> GateTable<K> {
    pub fn new(default_mode: GateMode) -> Self {
        GateTable {
            gates: HashMap::new(),
            default_mode,
        }
    }

    pub fn mode(&self, key: &K) -> GateMode {
        self.gates
            .get(key)
            .and_then(|g| g.mode)
            .unwrap_or(self.default_mode)
    }

    /// Sets the mode. Switching to `pass` does not release the buffer: that
    /// is what `flush` (in order) or `discard` are for.
    pub fn set_mode(&mut self, key: K, mode: GateMode) {
        self.gates.entry(key).or_default().mode = Some(mode);
    }

    /// Offers an outgoing packet.
    pub fn admit(&mut self, key: &K, packet: &[u8]) -> Admit {
        if self.mode(key) == GateMode::Pass {
            return Admit::Pass;
        }
        let gate = self.gates.entry(key.clone()).or_default();
        let first = gate.buffer.is_empty();
        if let Some(id) = syn_identity(packet)
            && let Some(slot) = gate.buffer.iter_mut().find(|p| syn_identity(p) == Some(id))
        {
            slot.clear();
            slot.extend_from_slice(packet);
            return Admit::Buffered {
                first,
                dropped_oldest: false,
            };
        }
        let dropped_oldest = gate.buffer.len() >= BUFFER_PACKETS;
        if dropped_oldest {
            gate.buffer.pop_front();
        }
        gate.buffer.push_back(packet.to_vec());
        Admit::Buffered {
            first,
            dropped_oldest,
        }
    }

    /// Takes the buffered packets, oldest first, for sending.
    pub fn flush(&mut self, key: &K) -> Vec<Vec<u8>> {
        self.gates
            .get_mut(key)
            .map(|g| g.buffer.drain(..).collect())
            .unwrap_or_default()
    }

    /// Drops the buffered packets; returns how many there were.
    pub fn discard(&mut self, key: &K) -> usize {
        self.gates
            .get_mut(key)
            .map(|g| std::mem::take(&mut g.buffer).len())
            .unwrap_or(0)
    }

    /// Forgets keys matching `pred` (gateway lost, resource removed), with
    /// their buffers; returns the number of packets dropped.
    pub fn remove_where(&mut self, mut pred: impl FnMut(&K) -> bool) -> usize {
        let mut dropped = 0;
        self.gates.retain(|k, g| {
            let keep = !pred(k);
            if !keep {
                dropped += g.buffer.len();
            }
            keep
        });
        dropped
    }

    /// Forgets one key with its buffer; returns the number of packets dropped.
    pub fn remove(&mut self, key: &K) -> usize {
        self.gates.remove(key).map_or(0, |g| g.buffer.len())
    }

    pub fn buffered(&self, key: &K) -> usize {
        self.gates.get(key).map_or(0, |g| g.buffer.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(sport: u16, flags: u8, payload: u8) -> Vec<u8> {
        let mut p = vec![0u8; 41];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&41u16.to_be_bytes());
        p[8] = 64;
        p[9] = proto::TCP;
        p[12..16].copy_from_slice(&[100, 64, 0, 2]);
        p[16..20].copy_from_slice(&[100, 96, 0, 1]);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&443u16.to_be_bytes());
        p[32] = 0x50;
        p[33] = flags;
        p[40] = payload;
        p
    }

    #[test]
    fn unknown_keys_follow_the_default_mode() {
        let mut t = GateTable::<u8>::new(GateMode::Buffer);
        assert!(matches!(
            t.admit(&1, &tcp(1, SYN, 0)),
            Admit::Buffered { first: true, .. }
        ));
        let mut p = GateTable::<u8>::new(GateMode::Pass);
        assert_eq!(p.admit(&1, &tcp(1, SYN, 0)), Admit::Pass);
    }

    #[test]
    fn flush_returns_packets_in_order_once() {
        let mut t = GateTable::new(GateMode::Buffer);
        for i in 0..3 {
            t.admit(&"k", &tcp(1000 + i, ACK, i as u8));
        }
        let out = t.flush(&"k");
        assert_eq!(out.iter().map(|p| p[40]).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(t.flush(&"k").is_empty());
    }

    #[test]
    fn a_full_buffer_drops_the_oldest() {
        let mut t = GateTable::new(GateMode::Buffer);
        for i in 0..BUFFER_PACKETS + 2 {
            let r = t.admit(&"k", &tcp(2000 + i as u16, ACK, i as u8));
            assert_eq!(
                r,
                Admit::Buffered {
                    first: i == 0,
                    dropped_oldest: i >= BUFFER_PACKETS
                }
            );
        }
        let out = t.flush(&"k");
        assert_eq!(out.len(), BUFFER_PACKETS);
        assert_eq!(out[0][40], 2);
    }

    #[test]
    fn a_retransmitted_syn_replaces_its_original() {
        let mut t = GateTable::new(GateMode::Buffer);
        t.admit(&"k", &tcp(5000, SYN, 1));
        t.admit(&"k", &tcp(5001, SYN, 7));
        t.admit(&"k", &tcp(5000, SYN, 2));
        let out = t.flush(&"k");
        assert_eq!(out.len(), 2);
        assert_eq!((out[0][40], out[1][40]), (2, 7));
        // A SYN-ACK or a data segment on the same ports is not a retransmitted SYN.
        t.admit(&"k", &tcp(5000, SYN, 1));
        t.admit(&"k", &tcp(5000, SYN | ACK, 1));
        assert_eq!(t.buffered(&"k"), 2);
    }

    #[test]
    fn pass_keeps_the_buffer_until_flush_or_discard() {
        let mut t = GateTable::new(GateMode::Buffer);
        t.admit(&"k", &tcp(1, ACK, 0));
        t.set_mode("k", GateMode::Pass);
        assert_eq!(t.admit(&"k", &tcp(2, ACK, 0)), Admit::Pass);
        assert_eq!(t.buffered(&"k"), 1);
        assert_eq!(t.discard(&"k"), 1);
        assert_eq!(t.buffered(&"k"), 0);
    }

    #[test]
    fn remove_where_drops_keys_and_buffers() {
        let mut t = GateTable::new(GateMode::Buffer);
        t.admit(&("gw1", 1), &tcp(1, ACK, 0));
        t.admit(&("gw2", 1), &tcp(1, ACK, 0));
        t.set_mode(("gw1", 2), GateMode::Pass);
        assert_eq!(t.remove_where(|k| k.0 == "gw1"), 1);
        assert_eq!(t.mode(&("gw1", 2)), GateMode::Buffer);
        assert_eq!(t.buffered(&("gw2", 1)), 1);
    }

    #[test]
    fn malformed_packets_are_buffered_as_bytes_without_panicking() {
        let mut t = GateTable::new(GateMode::Buffer);
        for junk in [&[][..], &[0x45][..], &[0x60; 10][..]] {
            t.admit(&"k", junk);
        }
        assert_eq!(t.buffered(&"k"), 3);
    }
}
