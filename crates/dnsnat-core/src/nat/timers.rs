//! The queue of session deadlines.
//!
//! A session's deadline moves later with every packet. Re-sorting a priority
//! queue per packet would put a `log n` operation on the hot path, so the
//! queue is lazy instead: each session has one *live* entry, pushed with the
//! deadline it had when queued. When an entry comes due, the session's real
//! deadline is recomputed; if activity pushed it later, the entry is pushed
//! again for that time, otherwise the session expires. A packet only pushes an
//! entry when it makes the deadline *earlier* (the second FIN), which happens
//! at most once per session.
//!
//! Entries of removed sessions, and entries superseded by an earlier one, stay
//! in the heap until they come due; they are recognised by a generation
//! counter and by comparing with the session's `queued` time. To keep that
//! garbage bounded, the owner rebuilds the heap when it holds more than twice
//! as many entries as there are sessions ([`Timers::needs_compaction`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub at: Timestamp,
    pub index: u32,
    pub generation: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    pub fn push(&mut self, entry: Entry) {
        self.heap.push(Reverse(entry));
    }

    /// The earliest queued time (possibly of a stale entry: waking up early
    /// is harmless, late is not).
    pub fn peek(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn needs_compaction(&self, live: usize) -> bool {
        self.heap.len() > 2 * live + 1024
    }

    /// Replaces the contents with exactly `entries` (the live ones).
    pub fn rebuild(&mut self, entries: impl Iterator<Item = Entry>) {
        let mut v = std::mem::take(&mut self.heap).into_vec();
        v.clear();
        v.extend(entries.map(Reverse));
        self.heap = BinaryHeap::from(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(secs: u64, index: u32) -> Entry {
        Entry {
            at: Timestamp::from_secs(secs),
            index,
            generation: 0,
        }
    }

    #[test]
    fn pops_in_order_and_only_when_due() {
        let mut t = Timers::default();
        t.push(e(5, 1));
        t.push(e(3, 2));
        t.push(e(9, 3));
        assert_eq!(t.peek(), Some(Timestamp::from_secs(3)));
        assert_eq!(t.pop_due(Timestamp::from_secs(2)), None);
        assert_eq!(t.pop_due(Timestamp::from_secs(6)).map(|e| e.index), Some(2));
        assert_eq!(t.pop_due(Timestamp::from_secs(6)).map(|e| e.index), Some(1));
        assert_eq!(t.pop_due(Timestamp::from_secs(6)), None);
        t.rebuild([e(1, 7)].into_iter());
        assert_eq!(t.len(), 1);
        assert_eq!(t.peek(), Some(Timestamp::from_secs(1)));
    }
}
