//! The two things a tunnel's loops do I/O on, as traits: the TUN device and
//! the UDP socket. The real ones are `tun::AsyncDevice` and tokio's
//! `UdpSocket`; the tests drive the very same loops over in-memory fakes, so
//! the packet logic of both roles is tested without root or a kernel.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

pub trait Device: Send + Sync + 'static {
    /// Reads one IP packet.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Writes one IP packet.
    fn send(&self, packet: &[u8]) -> impl Future<Output = io::Result<usize>> + Send;
}

pub trait Socket: Send + Sync + 'static {
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;
    /// Never waits: a full buffer is an error the caller counts as a drop.
    fn try_send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize>;
}

impl Device for tun::AsyncDevice {
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
        tun::AsyncDevice::recv(self, buf)
    }

    fn send(&self, packet: &[u8]) -> impl Future<Output = io::Result<usize>> + Send {
        tun::AsyncDevice::send(self, packet)
    }
}

impl Socket for tokio::net::UdpSocket {
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        tokio::net::UdpSocket::recv_from(self, buf)
    }

    fn try_send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        tokio::net::UdpSocket::try_send_to(self, datagram, to)
    }
}
