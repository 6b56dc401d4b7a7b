//! Encrypted datagrams on their way to the socket, grouped so that one
//! `sendmsg` carries many of them (UDP GSO).
//!
//! The kernel takes a GSO send as one buffer cut into datagrams of one size,
//! the last of which may be shorter, all to one destination. A TCP burst read
//! from the device splits into equal segments and WireGuard pads them to equal
//! ciphertexts, so in the bulk case a whole burst leaves in one call. Anything
//! that breaks the pattern (another peer, a different size, a handshake) ends
//! the group and starts the next one; datagrams always leave in the order
//! they were sealed.

use std::io;
use std::net::SocketAddr;

use super::io::Socket;
use crate::counters::{Counters, add, inc};

/// The largest group: a UDP payload must fit an IP packet's 16-bit length.
const MAX_GROUP_BYTES: usize = 65_000;
/// Room for one datagram after a group: the largest WireGuard message (a
/// 65,535-byte packet padded to 16 bytes, with 32 bytes of header and tag).
/// boringtun panics rather than fail on a smaller buffer.
const MAX_DATAGRAM: usize = 65_536 + 32;

pub struct Outbox {
    buf: Vec<u8>,
    /// Bytes of the current group.
    len: usize,
    /// Size of every datagram of the group but the last.
    segment: usize,
    count: usize,
    /// The last datagram was shorter than `segment`: nothing may follow it.
    closed: bool,
    to: Option<SocketAddr>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            buf: vec![0u8; MAX_GROUP_BYTES + MAX_DATAGRAM],
            len: 0,
            segment: 0,
            count: 0,
            closed: false,
            to: None,
        }
    }
}

impl Outbox {
    /// Adds the datagram `write` puts at the start of the slice it is given
    /// (returning its length, or `None` for nothing to send) for `to`.
    /// Without a destination the datagram is written and counted as a send
    /// error: the peer has not told us where it is.
    pub fn push<S: Socket>(
        &mut self,
        socket: &S,
        counters: &Counters,
        to: Option<SocketAddr>,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) {
        if self.buf.len() - self.len < MAX_DATAGRAM {
            self.flush(socket, counters);
        }
        let Some(n) = write(&mut self.buf[self.len..]) else {
            return;
        };
        let Some(to) = to else {
            return inc(&counters.drop_send_error);
        };
        let joins = self.count > 0
            && self.to == Some(to)
            && !self.closed
            && n <= self.segment
            && self.count < socket.max_segments()
            && self.len + n <= MAX_GROUP_BYTES;
        if joins {
            self.len += n;
            self.count += 1;
            self.closed = n < self.segment;
            return;
        }
        if self.count > 0 {
            self.send_group(socket, counters);
            self.buf.copy_within(self.len..self.len + n, 0);
        }
        self.len = n;
        self.count = 1;
        self.segment = n;
        self.closed = false;
        self.to = Some(to);
    }

    /// Adds a datagram that is already encrypted.
    pub fn push_bytes<S: Socket>(
        &mut self,
        socket: &S,
        counters: &Counters,
        to: Option<SocketAddr>,
        datagram: &[u8],
    ) {
        self.push(socket, counters, to, |dst| {
            dst.get_mut(..datagram.len())?.copy_from_slice(datagram);
            Some(datagram.len())
        });
    }

    /// Sends what is waiting.
    pub fn flush<S: Socket>(&mut self, socket: &S, counters: &Counters) {
        if self.count > 0 {
            self.send_group(socket, counters);
        }
        self.len = 0;
        self.count = 0;
        self.closed = false;
    }

    fn send_group<S: Socket>(&mut self, socket: &S, counters: &Counters) {
        let Some(to) = self.to else { return };
        // Non-blocking: a full socket buffer drops like a full link would,
        // instead of stalling the loop (and every other peer) behind it.
        let result = socket.try_send_segments(&self.buf[..self.len], self.segment, to);
        count_send(counters, result, self.count as u64);
    }
}

/// Counts a send of `n` datagrams by how it ended.
pub fn count_send(counters: &Counters, result: io::Result<()>, n: u64) {
    match result {
        Ok(()) => {
            add(&counters.udp_tx_datagrams, n);
            inc(&counters.udp_tx_sends);
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => add(&counters.drop_send_full, n),
        Err(_) => add(&counters.drop_send_error, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every send: (bytes, segment size, destination).
    struct Recorder {
        sends: Mutex<Vec<(Vec<u8>, usize, SocketAddr)>>,
        max: usize,
    }

    impl Socket for Recorder {
        async fn recv_batch(&self, _: &mut super::super::io::Datagrams) -> io::Result<()> {
            std::future::pending().await
        }
        fn try_send_segments(&self, d: &[u8], segment: usize, to: SocketAddr) -> io::Result<()> {
            self.sends.lock().unwrap().push((d.to_vec(), segment, to));
            Ok(())
        }
        fn max_segments(&self) -> usize {
            self.max
        }
    }

    fn run(max: usize, datagrams: &[(usize, u8, &str)]) -> Vec<(Vec<usize>, String)> {
        let socket = Recorder {
            sends: Mutex::default(),
            max,
        };
        let counters = Counters::default();
        let mut outbox = Outbox::default();
        for &(len, fill, to) in datagrams {
            let to: SocketAddr = to.parse().unwrap();
            outbox.push_bytes(&socket, &counters, Some(to), &vec![fill; len]);
        }
        outbox.flush(&socket, &counters);
        let sends = socket.sends.into_inner().unwrap();
        let total: usize = sends.iter().map(|(d, s, _)| d.len().div_ceil(*s)).sum();
        assert_eq!(
            counters
                .udp_tx_datagrams
                .load(std::sync::atomic::Ordering::Relaxed),
            total as u64
        );
        // Cut every send back into datagrams: (sizes, destination), and check
        // the bytes are the datagrams' in the order they were pushed.
        let mut fills = datagrams.iter().map(|d| d.1);
        sends
            .into_iter()
            .map(|(d, segment, to)| {
                let sizes: Vec<usize> = d
                    .chunks(segment)
                    .map(|c| {
                        let fill = fills.next().unwrap();
                        assert!(c.iter().all(|b| *b == fill), "datagrams out of order");
                        c.len()
                    })
                    .collect();
                (sizes, to.to_string())
            })
            .collect()
    }

    const A: &str = "192.0.2.1:51820";
    const B: &str = "192.0.2.2:51820";

    #[test]
    fn equal_datagrams_to_one_peer_share_a_send_up_to_the_limit() {
        let d: Vec<_> = (0..5).map(|i| (100, i, A)).collect();
        assert_eq!(
            run(3, &d),
            vec![(vec![100; 3], A.into()), (vec![100; 2], A.into())]
        );
    }

    #[test]
    fn a_shorter_datagram_ends_a_group_and_a_longer_one_starts_one() {
        let d = [
            (100, 1, A),
            (100, 2, A),
            (40, 3, A),
            (100, 4, A),
            (200, 5, A),
            (200, 6, A),
        ];
        assert_eq!(
            run(64, &d),
            vec![
                (vec![100, 100, 40], A.into()),
                (vec![100], A.into()),
                (vec![200, 200], A.into()),
            ]
        );
    }

    #[test]
    fn another_destination_starts_a_group_and_order_is_kept() {
        let d = [(100, 1, A), (100, 2, B), (100, 3, A)];
        assert_eq!(
            run(64, &d),
            vec![
                (vec![100], A.into()),
                (vec![100], B.into()),
                (vec![100], A.into()),
            ]
        );
    }

    #[test]
    fn a_group_stays_within_one_udp_payload() {
        let d: Vec<_> = (0..50).map(|i| (1452, i, A)).collect();
        let sends = run(64, &d);
        assert!(
            sends.len() == 2,
            "{:?}",
            sends.iter().map(|s| s.0.len()).collect::<Vec<_>>()
        );
        for (sizes, _) in &sends {
            assert!(sizes.iter().sum::<usize>() <= MAX_GROUP_BYTES);
        }
    }

    #[test]
    fn without_a_destination_nothing_is_sent_and_the_drop_is_counted() {
        let socket = Recorder {
            sends: Mutex::default(),
            max: 64,
        };
        let counters = Counters::default();
        let mut outbox = Outbox::default();
        outbox.push_bytes(&socket, &counters, None, &[1; 10]);
        outbox.flush(&socket, &counters);
        assert!(socket.sends.lock().unwrap().is_empty());
        assert_eq!(
            counters
                .drop_send_error
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
