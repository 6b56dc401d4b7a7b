//! Translation of fragments that carry no transport header.
//!
//! Only the first fragment of a datagram has the ports, so only it can be
//! matched to a session. When it is translated, the NAT remembers, per
//! (source, destination, identification, protocol) as they arrived, the
//! address it put in; later fragments of the same datagram get the same
//! address and nothing else changes (the transport checksum, patched in the
//! first fragment, covers the whole datagram). No reassembly, no buffering:
//! a later fragment that arrives before its first one is dropped
//! (`Fragment`), as is any fragment once the entry is gone.
//!
//! Entries live a few seconds (the fragments of one datagram travel
//! together) and are bounded in number, oldest forgotten first.

use std::net::IpAddr;
use std::time::Duration;

use super::recent::Recent;
use super::time::Timestamp;
use crate::packet::ip::IpInfo;

/// A datagram, as named by its fragments' headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DatagramKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ident: u32,
    pub protocol: u8,
}

impl DatagramKey {
    pub fn of(info: &IpInfo) -> DatagramKey {
        DatagramKey {
            src: info.src,
            dst: info.dst,
            ident: info.ident,
            protocol: info.protocol,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Fragments(Recent<DatagramKey, IpAddr>);

impl Fragments {
    pub fn new(cap: usize, ttl: Duration) -> Fragments {
        Fragments(Recent::new(cap, ttl))
    }

    /// Remembers that later fragments of `key` get address `addr`.
    pub fn insert(&mut self, key: DatagramKey, addr: IpAddr, now: Timestamp) {
        self.0.prune(now);
        self.0.insert(key, addr, now);
    }

    /// The address for a later fragment of `key`, if its first one was seen
    /// recently.
    pub fn get(&self, key: &DatagramKey, now: Timestamp) -> Option<IpAddr> {
        match self.0.get(key) {
            Some((addr, at)) if self.0.is_fresh(at, now) => Some(*addr),
            _ => None,
        }
    }

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

    fn key(ident: u32) -> DatagramKey {
        DatagramKey {
            src: "100.64.0.2".parse().unwrap(),
            dst: "100.96.0.1".parse().unwrap(),
            ident,
            protocol: 17,
        }
    }

    #[test]
    fn remembered_briefly_and_boundedly() {
        let r: IpAddr = "198.18.0.1".parse().unwrap();
        let mut f = Fragments::new(2, Duration::from_secs(5));
        f.insert(key(1), r, Timestamp::from_secs(0));
        assert_eq!(f.get(&key(1), Timestamp::from_secs(4)), Some(r));
        assert_eq!(f.get(&key(1), Timestamp::from_secs(5)), None);
        assert_eq!(f.get(&key(2), Timestamp::from_secs(1)), None);
        f.insert(key(2), r, Timestamp::from_secs(1));
        f.insert(key(3), r, Timestamp::from_secs(1));
        assert_eq!(f.len(), 2, "capped");
        assert_eq!(
            f.get(&key(1), Timestamp::from_secs(1)),
            None,
            "oldest forgotten"
        );
        f.prune(Timestamp::from_secs(6));
        assert_eq!(f.len(), 0);
    }
}
