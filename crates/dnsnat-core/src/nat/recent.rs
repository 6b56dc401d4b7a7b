//! A memory of recent things, bounded twice: by count (oldest forgotten
//! first) and by age. The NAT keeps two of these: expired sessions
//! (`tombstones.rs`) and first fragments (`fragments.rs`); both exist so that
//! untrusted traffic can never make the gateway remember without limit.
//!
//! Insertion order lives in a queue that may still hold entries the map has
//! since dropped or refreshed; an entry there is honoured only if its
//! timestamp is the map's, so a re-inserted key is not forgotten by its old
//! place in the queue. Every operation is amortised O(1).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use super::time::Timestamp;

#[derive(Debug)]
pub(crate) struct Recent<K, V> {
    map: HashMap<K, (V, Timestamp)>,
    order: VecDeque<(K, Timestamp)>,
    cap: usize,
    ttl: Duration,
}

impl<K: Copy + Eq + Hash, V> Recent<K, V> {
    pub fn new(cap: usize, ttl: Duration) -> Self {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
            ttl,
        }
    }

    /// Remembers `key` as of `now`, replacing what was there.
    pub fn insert(&mut self, key: K, value: V, now: Timestamp) {
        if self.cap == 0 {
            return;
        }
        self.map.insert(key, (value, now));
        self.order.push_back((key, now));
        while self.order.len() > self.cap {
            self.pop_front();
        }
    }

    /// The value of `key` and when it was remembered, if it still is
    /// (whether its age has passed is for the caller to ask, see `is_fresh`).
    pub fn get(&self, key: &K) -> Option<(&V, Timestamp)> {
        self.map.get(key).map(|(v, at)| (v, *at))
    }

    /// Whether something remembered at `at` is younger than the time to live.
    pub fn is_fresh(&self, at: Timestamp, now: Timestamp) -> bool {
        now < at + self.ttl
    }

    pub fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }

    /// Forgets what is older than the time to live.
    pub fn prune(&mut self, now: Timestamp) {
        while let Some((_, t)) = self.order.front() {
            if self.is_fresh(*t, now) {
                break;
            }
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((k, t)) = self.order.pop_front()
            && self.map.get(&k).is_some_and(|(_, at)| *at == t)
        {
            self.map.remove(&k);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}
