//! Recently expired sessions, remembered so that their late inbound packets
//! are dropped as `ExpiredSession` and counted as such.
//!
//! Either way such a packet is dropped (it is never forwarded untranslated),
//! but telling "a server still talking to a session we closed" apart from
//! "traffic that never had a session" is what makes the counters useful when
//! an idle limit is too short. The memory is bounded by count and by age
//! (`recent.rs`).

use std::time::Duration;

use super::key::OutsideKey;
use super::recent::Recent;
use super::time::Timestamp;

#[derive(Debug)]
pub(crate) struct Tombstones(Recent<OutsideKey, ()>);

impl Tombstones {
    pub fn new(cap: usize, ttl: Duration) -> Tombstones {
        Tombstones(Recent::new(cap, ttl))
    }

    pub fn insert(&mut self, key: OutsideKey, now: Timestamp) {
        self.0.insert(key, (), now);
    }

    pub fn contains(&self, key: &OutsideKey) -> bool {
        self.0.get(key).is_some()
    }

    /// Forgets `key` (a new session now owns it).
    pub fn remove(&mut self, key: &OutsideKey) {
        self.0.remove(key);
    }

    /// Forgets what is older than the time to live.
    pub fn prune(&mut self, now: Timestamp) {
        self.0.prune(now);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::key::Protocol;

    fn key(port: u16) -> OutsideKey {
        OutsideKey {
            protocol: Protocol::Udp,
            port,
            real: "198.18.0.1".parse().unwrap(),
        }
    }

    #[test]
    fn bounded_by_count_and_age() {
        let mut t = Tombstones::new(2, Duration::from_secs(10));
        t.insert(key(1), Timestamp::from_secs(0));
        t.insert(key(2), Timestamp::from_secs(1));
        t.insert(key(3), Timestamp::from_secs(2));
        assert!(!t.contains(&key(1)), "oldest forgotten past the cap");
        assert!(t.contains(&key(2)) && t.contains(&key(3)));
        t.prune(Timestamp::from_secs(11));
        assert!(!t.contains(&key(2)));
        assert!(t.contains(&key(3)));
        t.remove(&key(3));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn reinserted_key_survives_its_old_entry() {
        let mut t = Tombstones::new(2, Duration::from_secs(10));
        t.insert(key(1), Timestamp::from_secs(0));
        t.insert(key(1), Timestamp::from_secs(5));
        t.prune(Timestamp::from_secs(12));
        assert!(t.contains(&key(1)));
        t.prune(Timestamp::from_secs(15));
        assert!(!t.contains(&key(1)));
    }
}
