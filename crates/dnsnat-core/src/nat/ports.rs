//! Choosing the outside port of a new session.
//!
//! The client's own port is kept when it is free towards that real address
//! (RFC 4787 REQ-3: port preservation), which is the case for nearly every
//! flow. Otherwise a bounded number of random ports are tried: a client that
//! filled its port space towards one address must not make every later flow
//! scan 65,535 ports on the packet thread; after the last try the flow is a
//! counted drop (`PortsExhausted`). The port space is per client, so a full
//! one only ever hurts the client that filled it.

use super::key::Protocol;

/// Random tries after the preferred port. With a space 90 % full the chance
/// of missing a free port is 0.9^64 ≈ 0.1 %; past that the client is flooding.
pub(crate) const MAX_PROBES: u32 = 64;

/// A small xorshift generator: ports need to be spread, not secret.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PortRng(u64);

impl PortRng {
    pub fn new(seed: u64) -> PortRng {
        PortRng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The port for a new session, given which ports are taken towards the
/// session's real address; `None` when `MAX_PROBES` random tries all failed.
pub(crate) fn choose_port(
    protocol: Protocol,
    preferred: u16,
    rng: &mut PortRng,
    taken: impl Fn(u16) -> bool,
) -> Option<u16> {
    let first = protocol.first_port();
    let preferred = preferred.max(first);
    if !taken(preferred) {
        return Some(preferred);
    }
    let span = u64::from(u16::MAX - first) + 1;
    (0..MAX_PROBES)
        .map(|_| (rng.next() % span) as u16 + first)
        .find(|&port| !taken(port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn keeps_the_preferred_port_when_free() {
        let mut rng = PortRng::new(7);
        assert_eq!(
            choose_port(Protocol::Udp, 5353, &mut rng, |_| false),
            Some(5353)
        );
    }

    #[test]
    fn finds_a_free_port_in_a_mostly_full_space() {
        let mut rng = PortRng::new(7);
        // Only every tenth port is free.
        let port = choose_port(Protocol::Udp, 10, &mut rng, |p| p % 10 != 0).unwrap();
        assert_eq!(port % 10, 0);
    }

    #[test]
    fn a_full_space_costs_a_bounded_number_of_tries() {
        let mut rng = PortRng::new(7);
        let tries = Cell::new(0u32);
        let got = choose_port(Protocol::Tcp, 80, &mut rng, |_| {
            tries.set(tries.get() + 1);
            true
        });
        assert_eq!(got, None);
        assert_eq!(tries.get(), MAX_PROBES + 1);
    }
}
