//! When each domain with proxy IPs was last used, ordered, so that the least
//! recently used one and every one idle past a deadline are found without a
//! scan.
//!
//! Times are the runtime's milliseconds, signed so that a domain seeded from
//! the state file with its idle time can lie before this run's start.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Recency {
    last_used: HashMap<Arc<str>, i64>,
    /// (last use, domain): the first is the least recently used.
    order: BTreeSet<(i64, Arc<str>)>,
}

impl Recency {
    /// Records a use of `domain` at `now` (a time earlier than the one held is ignored).
    pub fn touch(&mut self, domain: &Arc<str>, now: i64) {
        match self.last_used.get_mut(domain) {
            Some(t) if *t >= now => {}
            Some(t) => {
                self.order.remove(&(*t, domain.clone()));
                *t = now;
                self.order.insert((now, domain.clone()));
            }
            None => {
                self.last_used.insert(domain.clone(), now);
                self.order.insert((now, domain.clone()));
            }
        }
    }

    pub fn remove(&mut self, domain: &str) {
        if let Some((key, t)) = self.last_used.remove_entry(domain) {
            self.order.remove(&(t, key));
        }
    }

    pub fn last_used(&self, domain: &str) -> Option<i64> {
        self.last_used.get(domain).copied()
    }

    /// Every domain with its last use, least recently used first.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &Arc<str>)> {
        self.order.iter().map(|(t, d)| (*t, d))
    }

    /// The least recently used domain.
    pub fn oldest(&self) -> Option<&Arc<str>> {
        self.order.first().map(|(_, d)| d)
    }

    /// The least recently used domain if its last use is before `before`.
    pub fn oldest_before(&self, before: i64) -> Option<&Arc<str>> {
        self.order
            .first()
            .filter(|(t, _)| *t < before)
            .map(|(_, d)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_the_least_recently_touched() {
        let mut r = Recency::default();
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        r.touch(&a, 10);
        r.touch(&b, 20);
        r.touch(&c, 30);
        assert_eq!(r.oldest().map(|d| &**d), Some("a"));
        r.touch(&a, 40);
        assert_eq!(r.oldest().map(|d| &**d), Some("b"));
        // An earlier time never moves a domain back.
        r.touch(&a, 5);
        assert_eq!(r.last_used("a"), Some(40));
        assert_eq!(r.oldest_before(20).map(|d| &**d), None);
        assert_eq!(r.oldest_before(21).map(|d| &**d), Some("b"));
        r.remove("b");
        assert_eq!(r.oldest().map(|d| &**d), Some("c"));
        r.remove("c");
        r.remove("a");
        assert!(r.oldest().is_none());
    }
}
