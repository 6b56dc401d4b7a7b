//! The two things a tunnel's loops do I/O on, as traits: the TUN device and
//! the UDP socket, both moving packets in batches. The real ones are a
//! `tun-rs` device with offloads and a [`BatchSocket`]; the
//! tests drive the very same loops over in-memory fakes, so the packet logic
//! of both roles is tested without root or a kernel.
//!
//! Why batches: a profile of the per-packet loops showed three quarters of
//! the time in the kernel, one system call and often one wakeup per packet
//! (docs/performance.md). With offloads the kernel hands the TUN reader a
//! whole TCP burst (up to 64 KiB) in one read, `tun-rs` splits it into
//! MTU-sized IP packets, and the writer coalesces consecutive segments of a
//! flow back into one write; on the socket one `sendmsg` carries many
//! same-sized datagrams (UDP GSO) and one `recvmmsg` returns many (UDP GRO).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tun_rs::{GROTable, VIRTIO_NET_HDR_LEN};

pub use crate::udp::{BatchSocket, Datagrams, MAX_UDP};

/// Bytes kept free in front of every packet written to the device: the
/// virtio-net header a TUN device with offloads expects before each write.
pub const HEADROOM: usize = VIRTIO_NET_HDR_LEN;
/// Packets in one device batch: more than a 64 KiB TSO burst splits into at
/// the smallest MTU (65,535 / 1,240 bytes of payload ≈ 53).
pub const DEVICE_BATCH: usize = tun_rs::IDEAL_BATCH_SIZE;
/// Buffers per `recvmmsg`; each holds one GRO super-datagram of ≤ 64 KiB.
pub const SOCKET_BATCH: usize = 16;

/// IP packets read from the device in one go.
pub struct DeviceRx {
    /// The raw read: the virtio header and up to 64 KiB of (super-)packet.
    raw: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    count: usize,
}

impl DeviceRx {
    /// `mtu`: the largest packet a single read can return without offloads.
    pub fn new(mtu: usize) -> DeviceRx {
        DeviceRx {
            raw: vec![0u8; HEADROOM + MAX_UDP],
            bufs: vec![vec![0u8; mtu]; DEVICE_BATCH],
            sizes: vec![0; DEVICE_BATCH],
            count: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn packet_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i][..self.sizes[i]]
    }

    /// For devices without offloads (the tests' fake): start a batch.
    #[cfg(test)]
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Adds a packet; false when the batch is full or the packet too big.
    #[cfg(test)]
    pub fn push(&mut self, packet: &[u8]) -> bool {
        let Some(buf) = self.bufs.get_mut(self.count) else {
            return false;
        };
        let Some(dst) = buf.get_mut(..packet.len()) else {
            return false;
        };
        dst.copy_from_slice(packet);
        self.sizes[self.count] = packet.len();
        self.count += 1;
        true
    }
}

/// IP packets to write to the device, each behind `HEADROOM` free bytes.
pub struct DeviceTx {
    bufs: Vec<Vec<u8>>,
    count: usize,
    /// Capacity of one packet.
    capacity: usize,
    gro: GROTable,
}

impl DeviceTx {
    pub fn new(capacity: usize) -> DeviceTx {
        DeviceTx {
            // Coalescing appends the payloads of a flow's later segments to
            // its first buffer (or, prepending, to a later one), and tun-rs
            // coalesces only into a buffer whose capacity already holds the
            // result: every buffer reserves a whole 64 KiB super-packet. Only
            // the pages a write touches become resident.
            bufs: (0..DEVICE_BATCH)
                .map(|_| {
                    let mut b = Vec::with_capacity(2 * HEADROOM + MAX_UDP);
                    b.resize(HEADROOM + capacity, 0);
                    b
                })
                .collect(),
            count: 0,
            capacity,
            gro: GROTable::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Room for one packet.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn is_full(&self) -> bool {
        self.count == self.bufs.len()
    }

    /// Room for the next packet (`capacity` bytes). Call `commit` to keep
    /// what was written there; otherwise the next call reuses it.
    pub fn next_mut(&mut self) -> &mut [u8] {
        let b = &mut self.bufs[self.count];
        // A write may have grown or shrunk the buffer (coalescing appends the
        // payload of later segments to the first one of a flow).
        b.resize(HEADROOM + self.capacity, 0);
        &mut b[HEADROOM..]
    }

    /// Keeps `len` bytes of the packet `next_mut` returned, starting at
    /// `start` within it.
    pub fn commit(&mut self, start: usize, len: usize) {
        let b = &mut self.bufs[self.count];
        if start != 0 {
            b.copy_within(HEADROOM + start..HEADROOM + start + len, HEADROOM);
        }
        b.truncate(HEADROOM + len);
        self.count += 1;
    }

    /// The packet most recently committed, to change before it is written.
    pub fn last_mut(&mut self) -> Option<&mut [u8]> {
        let i = self.count.checked_sub(1)?;
        Some(&mut self.bufs[i][HEADROOM..])
    }

    /// Forgets the packet most recently committed.
    pub fn uncommit(&mut self) {
        self.count = self.count.saturating_sub(1);
    }

    #[cfg(test)]
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs[..self.count].iter().map(|b| &b[HEADROOM..])
    }

    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// After a write: how many of the written buffers carried several
    /// packets coalesced into one.
    pub fn coalesced(&self) -> usize {
        self.bufs[..self.count]
            .iter()
            .filter(|b| b.len() > HEADROOM + self.capacity)
            .count()
    }
}

pub trait Device: Send + Sync + 'static {
    /// Reads one or more IP packets into `rx` (waits for at least one).
    fn recv_batch(&self, rx: &mut DeviceRx) -> impl Future<Output = io::Result<()>> + Send;
    /// Like `recv_batch`, without waiting: `WouldBlock` when nothing is there.
    fn try_recv_batch(&self, rx: &mut DeviceRx) -> io::Result<()>;
    /// Writes every packet of `tx`; on an error the others are still written.
    fn send_batch(&self, tx: &mut DeviceTx) -> impl Future<Output = io::Result<()>> + Send;
}

pub trait Socket: Send + Sync + 'static {
    /// Receives one or more datagrams into `rx` (waits for at least one).
    fn recv_batch(&self, rx: &mut Datagrams) -> impl Future<Output = io::Result<()>> + Send;
    /// Sends `datagrams`: consecutive datagrams of `segment` bytes, the last
    /// one possibly shorter, all to `to`. Never waits: a full buffer is an
    /// error the caller counts as a drop.
    fn try_send_segments(&self, datagrams: &[u8], segment: usize, to: SocketAddr)
    -> io::Result<()>;
    /// How many datagrams one `try_send_segments` may carry.
    fn max_segments(&self) -> usize;
}

impl Device for tun_rs::AsyncDevice {
    async fn recv_batch(&self, rx: &mut DeviceRx) -> io::Result<()> {
        let DeviceRx {
            raw,
            bufs,
            sizes,
            count,
        } = rx;
        *count = self.recv_multiple(raw, bufs, sizes, 0).await?;
        Ok(())
    }

    fn try_recv_batch(&self, rx: &mut DeviceRx) -> io::Result<()> {
        let DeviceRx {
            raw,
            bufs,
            sizes,
            count,
        } = rx;
        *count = self.try_recv_multiple(raw, bufs, sizes, 0)?;
        Ok(())
    }

    async fn send_batch(&self, tx: &mut DeviceTx) -> io::Result<()> {
        let DeviceTx {
            bufs, count, gro, ..
        } = tx;
        self.send_multiple(gro, &mut bufs[..*count], HEADROOM)
            .await
            .map(|_| ())
    }
}

impl Socket for BatchSocket {
    async fn recv_batch(&self, rx: &mut Datagrams) -> io::Result<()> {
        self.recv(rx).await
    }

    fn try_send_segments(
        &self,
        datagrams: &[u8],
        segment: usize,
        to: SocketAddr,
    ) -> io::Result<()> {
        self.try_send(datagrams, segment, to)
    }

    fn max_segments(&self) -> usize {
        BatchSocket::max_segments(self)
    }
}
