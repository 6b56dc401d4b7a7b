//! The peers of one tunnel and cryptokey routing between them.
//!
//! Each peer has a boringtun `Tunn` (the WireGuard session state) behind its own
//! mutex, so two peers never contend, and a list of allowed prefixes: the
//! destinations routed to it and the only sources accepted from it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use boringtun::noise::Tunn;
use boringtun::x25519::PublicKey;
use dnsnat_core::nat::ClientNat;

use super::cidr::Cidr;
use super::control_budget::ControlBudget;

pub struct Peer {
    /// Our local index for this peer; boringtun puts it in the upper 24 bits of
    /// every session index, which is how data packets find their peer.
    pub index: u32,
    pub public_key: PublicKey,
    pub public_b64: String,
    pub allowed: Vec<Cidr>,
    pub tunn: Mutex<Tunn>,
    /// Where to send: configured, then updated from every authenticated packet
    /// (WireGuard's roaming).
    pub endpoint: Mutex<Option<SocketAddr>>,
    /// Whether a handshake has completed and not yet expired.
    pub up: AtomicBool,
    /// On a gateway, this client's NAT: its packets are translated from proxy
    /// IPs to real addresses instead of being delivered as they are.
    pub nat: Option<Mutex<ClientNat>>,
    /// Control packets this peer may hand to JavaScript (gateway role).
    pub control_budget: Option<Mutex<ControlBudget>>,
}

impl Peer {
    pub fn allows_source(&self, src: IpAddr) -> bool {
        self.allowed.iter().any(|c| c.contains(src))
    }

    pub fn endpoint(&self) -> Option<SocketAddr> {
        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
pub struct PeerTable {
    by_index: HashMap<u32, Arc<Peer>>,
    by_key: HashMap<[u8; 32], Arc<Peer>>,
    next_index: u32,
}

impl PeerTable {
    pub fn next_index(&mut self) -> u32 {
        // 24 bits are available; wrapping past 16M peer additions is harmless
        // because removed indexes are no longer in the map.
        self.next_index = (self.next_index + 1) & 0x00FF_FFFF;
        self.next_index
    }

    pub fn insert(&mut self, peer: Peer) -> Option<Arc<Peer>> {
        let peer = Arc::new(peer);
        let old = self
            .by_key
            .insert(*peer.public_key.as_bytes(), peer.clone());
        if let Some(old) = &old {
            self.by_index.remove(&old.index);
        }
        self.by_index.insert(peer.index, peer);
        old
    }

    pub fn remove(&mut self, key: &[u8; 32]) -> Option<Arc<Peer>> {
        let peer = self.by_key.remove(key)?;
        self.by_index.remove(&peer.index);
        Some(peer)
    }

    pub fn by_key(&self, key: &[u8; 32]) -> Option<Arc<Peer>> {
        self.by_key.get(key).cloned()
    }

    /// The peer a session index belongs to.
    pub fn by_session_index(&self, receiver_idx: u32) -> Option<Arc<Peer>> {
        self.by_index.get(&(receiver_idx >> 8)).cloned()
    }

    /// Longest-prefix match over every peer's allowed prefixes. A linear scan:
    /// a dnsnat tunnel has a handful of peers (a client's gateways), and the
    /// gateway routes replies through its NAT table, not through this.
    pub fn route(&self, dst: IpAddr) -> Option<Arc<Peer>> {
        let mut best: Option<(&Arc<Peer>, u8)> = None;
        for peer in self.by_key.values() {
            for c in &peer.allowed {
                if c.contains(dst) && best.is_none_or(|(_, p)| c.prefix > p) {
                    best = Some((peer, c.prefix));
                }
            }
        }
        best.map(|(p, _)| p.clone())
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.by_key.values()
    }
}

/// Source and destination of an IP packet, or `None` if it is not one.
pub fn addresses(packet: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let s: [u8; 4] = packet[12..16].try_into().ok()?;
            let d: [u8; 4] = packet[16..20].try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d)))
        }
        6 if packet.len() >= 40 => {
            let s: [u8; 16] = packet[8..24].try_into().ok()?;
            let d: [u8; 16] = packet[24..40].try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boringtun::x25519::StaticSecret;

    fn peer(table: &mut PeerTable, seed: u8, allowed: &[&str]) -> [u8; 32] {
        let me = StaticSecret::from([1u8; 32]);
        let their = PublicKey::from(&StaticSecret::from([seed; 32]));
        let index = table.next_index();
        table.insert(Peer {
            index,
            public_key: their,
            public_b64: String::new(),
            allowed: allowed.iter().map(|s| s.parse().unwrap()).collect(),
            tunn: Mutex::new(Tunn::new(me, their, None, None, index, None)),
            endpoint: Mutex::new(None),
            up: AtomicBool::new(false),
            nat: None,
            control_budget: None,
        });
        *their.as_bytes()
    }

    #[test]
    fn routes_by_longest_prefix() {
        let mut t = PeerTable::default();
        let wide = peer(&mut t, 2, &["100.64.0.0/10"]);
        let narrow = peer(&mut t, 3, &["100.96.0.0/11"]);
        let r = |ip: &str| {
            t.route(ip.parse().unwrap())
                .map(|p| *p.public_key.as_bytes())
        };
        assert_eq!(r("100.97.0.1"), Some(narrow));
        assert_eq!(r("100.65.0.1"), Some(wide));
        assert_eq!(r("10.0.0.1"), None);
    }

    #[test]
    fn session_index_finds_its_peer_and_removal_forgets_it() {
        let mut t = PeerTable::default();
        let k = peer(&mut t, 2, &["100.64.0.2"]);
        let idx = t.by_key(&k).unwrap().index;
        assert!(t.by_session_index((idx << 8) | 0x17).is_some());
        assert!(t.remove(&k).is_some());
        assert!(t.by_session_index(idx << 8).is_none());
        assert!(t.route("100.64.0.2".parse().unwrap()).is_none());
    }

    #[test]
    fn replacing_a_peer_drops_the_old_index() {
        let mut t = PeerTable::default();
        let k = peer(&mut t, 2, &["100.64.0.2"]);
        let old = t.by_key(&k).unwrap().index;
        peer(&mut t, 2, &["100.64.0.3"]);
        assert!(t.by_session_index(old << 8).is_none());
        assert!(t.route("100.64.0.3".parse().unwrap()).is_some());
    }

    #[test]
    fn addresses_reads_both_families_and_rejects_junk() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[1, 2, 3, 4]);
        v4[16..20].copy_from_slice(&[5, 6, 7, 8]);
        assert_eq!(
            addresses(&v4),
            Some(("1.2.3.4".parse().unwrap(), "5.6.7.8".parse().unwrap()))
        );
        assert_eq!(addresses(&v4[..19]), None);
        assert_eq!(addresses(&[]), None);
        assert_eq!(addresses(&[0x70; 60]), None);
    }
}
