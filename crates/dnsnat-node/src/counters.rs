//! Counters of the tunnel: every drop has a reason and a number.

use dnsnat_core::nat::DropReason;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        #[derive(Default)]
        pub struct Counters { $(pub $name: AtomicU64,)* }

        impl Counters {
            /// Name/value pairs, for `dnsnat status` and Prometheus.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    tun_rx_packets,
    tun_tx_packets,
    udp_rx_datagrams,
    udp_tx_datagrams,
    // System calls, to read against the packets above: with offloads and
    // GSO/GRO one call carries many packets.
    tun_rx_reads,
    tun_tx_batches,
    tun_tx_coalesced,
    udp_rx_reads,
    udp_tx_sends,
    control_rx,
    control_tx,
    drop_no_peer_for_destination,
    drop_unknown_peer,
    drop_invalid_datagram,
    drop_source_not_allowed,
    drop_control_malformed,
    drop_send_error,
    drop_send_full,
    drop_oversized,
    drop_tun_read_error,
    drop_tun_write_error,
    drop_event_queue_full,
    drop_control_rate_limited,
    nat_forwarded_out,
    nat_forwarded_in,
    nat_icmp_errors_sent,
}

/// One counter per NAT drop reason, indexed by `DropReason::index()`.
pub struct NatDrops(pub [AtomicU64; DropReason::COUNT]);

impl Default for NatDrops {
    fn default() -> Self {
        NatDrops(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl NatDrops {
    pub fn record(&self, reason: DropReason) {
        inc(&self.0[reason.index()]);
    }

    pub fn snapshot(&self) -> Vec<(String, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| {
                (
                    format!("nat_drop_{}", r.as_str()),
                    self.0[r.index()].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
