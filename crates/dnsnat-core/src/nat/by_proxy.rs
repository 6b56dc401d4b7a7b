//! Which sessions go through each proxy IP: an index kept beside the session
//! slab, so removing a proxy IP's mapping (a policy change, a client's reset or
//! goodbye) costs the sessions of that proxy IP, never a scan of the table.
//!
//! A doubly linked list per proxy IP threaded through a vector parallel to the
//! slab: inserting and unlinking are O(1) and allocate nothing per session.
//! What must stay true: a slot is linked exactly while it holds a session, in
//! the list of that session's proxy IP.

use std::collections::HashMap;
use std::net::IpAddr;

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

#[derive(Debug, Default)]
pub(crate) struct ProxyIndex {
    heads: HashMap<IpAddr, u32>,
    links: Vec<Link>,
}

impl ProxyIndex {
    /// Links slot `index` into the list of `proxy`.
    pub fn insert(&mut self, index: u32, proxy: IpAddr) {
        let i = index as usize;
        if self.links.len() <= i {
            self.links.resize(
                i + 1,
                Link {
                    prev: NONE,
                    next: NONE,
                },
            );
        }
        let next = self.heads.insert(proxy, index).unwrap_or(NONE);
        self.links[i] = Link { prev: NONE, next };
        if next != NONE {
            self.links[next as usize].prev = index;
        }
    }

    /// Unlinks slot `index` from the list of `proxy`.
    pub fn remove(&mut self, index: u32, proxy: IpAddr) {
        let Link { prev, next } = self.links[index as usize];
        if prev == NONE {
            if next == NONE {
                self.heads.remove(&proxy);
            } else {
                self.heads.insert(proxy, next);
            }
        } else {
            self.links[prev as usize].next = next;
        }
        if next != NONE {
            self.links[next as usize].prev = prev;
        }
        self.links[index as usize] = Link {
            prev: NONE,
            next: NONE,
        };
    }

    /// The slots of `proxy`'s sessions.
    pub fn slots(&self, proxy: IpAddr) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = self.heads.get(&proxy).copied().unwrap_or(NONE);
        while at != NONE {
            out.push(at);
            at = self.links[at as usize].next;
        }
        out
    }

    /// Whether any session goes through `proxy`.
    pub fn contains(&self, proxy: IpAddr) -> bool {
        self.heads.contains_key(&proxy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_stay_consistent_through_inserts_and_removals_anywhere() {
        let a: IpAddr = "100.96.0.1".parse().unwrap();
        let b: IpAddr = "100.96.0.2".parse().unwrap();
        let mut ix = ProxyIndex::default();
        for i in 0..6 {
            ix.insert(i, if i % 2 == 0 { a } else { b });
        }
        let sorted = |p| {
            let mut v = ix.slots(p);
            v.sort();
            v
        };
        assert_eq!(sorted(a), vec![0, 2, 4]);
        assert_eq!(sorted(b), vec![1, 3, 5]);
        ix.remove(2, a); // middle
        ix.remove(4, a); // head (last inserted)
        ix.remove(1, b); // tail
        assert_eq!(ix.slots(a), vec![0]);
        let mut bs = ix.slots(b);
        bs.sort();
        assert_eq!(bs, vec![3, 5]);
        ix.remove(0, a);
        assert!(!ix.contains(a));
        assert!(ix.contains(b));
        // A reused slot joins another list cleanly.
        ix.insert(0, b);
        let mut bs = ix.slots(b);
        bs.sort();
        assert_eq!(bs, vec![0, 3, 5]);
    }
}
