//! A UDP socket that moves datagrams in batches, for the tunnel and for the
//! client's stub DNS alike: one `recvmmsg` returns many datagrams (and with
//! GRO a buffer holds several of one sender), one `sendmsg` with UDP GSO
//! carries many of one size to one destination. `quinn-udp` does the system
//! calls (the workspace forbids `unsafe`) and remembers whether the kernel
//! takes GSO at all.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use tokio::io::Interest;

/// Largest UDP payload, and so the largest GRO super-datagram the kernel
/// builds; a smaller receive buffer would truncate one.
pub const MAX_UDP: usize = 65_535;

/// Datagrams received in one go. A buffer may hold several datagrams of
/// `stride` bytes each (the last one may be shorter).
pub struct Datagrams {
    bufs: Vec<Vec<u8>>,
    meta: Vec<quinn_udp::RecvMeta>,
    count: usize,
}

impl Datagrams {
    /// Room for `batch` receives of up to 64 KiB each. The buffers are zeroed
    /// by the allocator, each on its own, so only the pages datagrams fill
    /// become resident.
    pub fn new(batch: usize) -> Datagrams {
        Datagrams {
            bufs: (0..batch).map(|_| vec![0u8; MAX_UDP]).collect(),
            meta: vec![quinn_udp::RecvMeta::default(); batch],
            count: 0,
        }
    }

    /// Every datagram, with its sender.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.bufs[..self.count]
            .iter()
            .zip(&self.meta)
            .flat_map(|(buf, m)| {
                let stride = if m.stride == 0 {
                    m.len.max(1)
                } else {
                    m.stride
                };
                buf[..m.len.min(buf.len())]
                    .chunks(stride)
                    .map(move |d| (d, unmap(m.addr)))
            })
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.count
    }

    /// For the tests' fake socket: start a batch.
    #[cfg(test)]
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Adds datagrams of `stride` bytes each (the last one may be shorter)
    /// from one sender, as GRO delivers them; false when the batch is full.
    #[cfg(test)]
    pub fn push(&mut self, datagrams: &[u8], stride: usize, from: SocketAddr) -> bool {
        let Some(buf) = self.bufs.get_mut(self.count) else {
            return false;
        };
        buf[..datagrams.len()].copy_from_slice(datagrams);
        let mut m = quinn_udp::RecvMeta::default();
        m.addr = from;
        m.len = datagrams.len();
        m.stride = stride;
        self.meta[self.count] = m;
        self.count += 1;
        true
    }
}

/// A dual-stack socket reports IPv4 senders as IPv4-mapped IPv6 addresses;
/// peers' endpoints are compared and shown as plain IPv4.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// A bound socket with the state `quinn-udp` keeps for it (whether GSO works,
/// how many GRO segments to expect).
pub struct BatchSocket {
    io: tokio::net::UdpSocket,
    state: quinn_udp::UdpSocketState,
    /// Bound to an IPv6 address (`[::]`): IPv4 peers are sent to as mapped.
    v6: bool,
}

impl BatchSocket {
    /// Takes a bound socket; turns on GRO where the kernel has it.
    pub fn new(io: tokio::net::UdpSocket) -> io::Result<BatchSocket> {
        let state = quinn_udp::UdpSocketState::new((&io).into())?;
        let v6 = io.local_addr()?.is_ipv6();
        Ok(BatchSocket { io, state, v6 })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// How many datagrams one send may carry: 1 where the kernel has no GSO
    /// or refused it once.
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Receives one or more datagrams into `rx` (waits for at least one).
    pub async fn recv(&self, rx: &mut Datagrams) -> io::Result<()> {
        let Datagrams { bufs, meta, count } = rx;
        *count = self
            .io
            .async_io(Interest::READABLE, || {
                let mut slices: Vec<IoSliceMut<'_>> =
                    bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                self.state.recv((&self.io).into(), &mut slices, meta)
            })
            .await?;
        Ok(())
    }

    /// Sends `datagrams`: consecutive datagrams of `segment` bytes, the last
    /// one possibly shorter, all to `to`. Never waits: a full buffer is a
    /// `WouldBlock` error.
    pub fn try_send(&self, datagrams: &[u8], segment: usize, to: SocketAddr) -> io::Result<()> {
        let transmit = self.transmit(datagrams, segment, to);
        self.io.try_io(Interest::WRITABLE, || {
            self.state.try_send((&self.io).into(), &transmit)
        })
    }

    /// Like `try_send`, but waits for room in the socket's buffer.
    pub async fn send(&self, datagrams: &[u8], segment: usize, to: SocketAddr) -> io::Result<()> {
        let transmit = self.transmit(datagrams, segment, to);
        self.io
            .async_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &transmit)
            })
            .await
    }

    fn transmit<'a>(
        &self,
        datagrams: &'a [u8],
        segment: usize,
        to: SocketAddr,
    ) -> quinn_udp::Transmit<'a> {
        let destination = match to {
            SocketAddr::V4(v4) if self.v6 => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            _ => to,
        };
        quinn_udp::Transmit {
            destination,
            ecn: None,
            contents: datagrams,
            segment_size: (datagrams.len() > segment).then_some(segment),
            src_ip: None,
        }
    }
}
