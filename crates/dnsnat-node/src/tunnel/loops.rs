//! The packet loops of a tunnel: TUN → WireGuard → UDP, UDP → WireGuard → TUN,
//! and the WireGuard timers. Every packet stays in Rust; JavaScript only hears
//! about control messages and peers coming and going, through [`EventSink`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use dnsnat_core::control;
use dnsnat_core::nat::{ClientNat, MAX_REPLY_LEN, NatConfig, NatEvent, Timestamp, Verdict};
use tokio::net::UdpSocket;

use super::counters::{Counters, NatDrops, inc};
use super::events::{EventSink, TunnelEvent};
use super::io::{Device, Socket};
use super::peers::{Peer, PeerTable, addresses};
use crate::client::{ClientRole, is_proxy};
use dnsnat_core::gate::Admit;

/// Largest IP packet read from the device or a datagram from the socket.
const MAX_PACKET: usize = 65_535;
/// WireGuard's data overhead (header + tag); also the minimum 148-byte
/// handshake buffer boringtun requires is far below `MAX_PACKET`.
const WG_OVERHEAD: usize = 32;
/// How often boringtun's timers run (handshake retries, keepalives, rekeys).
const TIMER_TICK: Duration = Duration::from_millis(250);
/// WireGuard rejects a session after 180 s without a new handshake; a peer
/// silent that long is reported down.
const PEER_DOWN_AFTER: Duration = Duration::from_secs(180);

pub struct Shared<D: Device = tun::AsyncDevice, S: Socket = UdpSocket> {
    pub secret: StaticSecret,
    pub public: PublicKey,
    pub peers: RwLock<PeerTable>,
    pub socket: S,
    pub device: D,
    pub counters: Arc<Counters>,
    pub nat_drops: NatDrops,
    pub events: EventSink,
    /// Origin of the NAT's timestamps.
    pub origin: Instant,
    /// The client role: stub DNS and per-key gates.
    pub client: Option<Arc<ClientRole>>,
}

/// A peer to add, parsed and checked.
pub struct PeerSpec {
    pub public_key: PublicKey,
    pub endpoint: Option<SocketAddr>,
    pub allowed: Vec<super::cidr::Cidr>,
    pub keepalive: Option<u16>,
    /// Gateway role: give this client a NAT of its own.
    pub nat: bool,
    /// Client role: the gateway id this peer serves.
    pub gateway_id: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a peer lock must not take the whole tunnel down.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<D: Device, S: Socket> Shared<D, S> {
    pub fn new(
        secret: StaticSecret,
        socket: S,
        device: D,
        events: EventSink,
        client: Option<Arc<ClientRole>>,
    ) -> Self {
        let counters = events.counters().clone();
        Shared {
            public: PublicKey::from(&secret),
            secret,
            peers: RwLock::new(PeerTable::default()),
            socket,
            device,
            counters,
            nat_drops: NatDrops::default(),
            events,
            origin: Instant::now(),
            client,
        }
    }

    /// Adds a peer, or replaces the one with the same key.
    pub fn add_peer(&self, spec: PeerSpec) {
        let nat = spec.nat.then(|| {
            // The client's tunnel IPs: the host prefixes among its allowed IPs.
            let hosts: Vec<std::net::IpAddr> = spec
                .allowed
                .iter()
                .filter(|c| c.prefix == if c.addr.is_ipv4() { 32 } else { 128 })
                .map(|c| c.addr)
                .collect();
            Mutex::new(ClientNat::new(NatConfig::default(), &hosts))
        });
        if let (Some(client), Some(id)) = (&self.client, &spec.gateway_id) {
            client
                .gateways
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone(), *spec.public_key.as_bytes());
        }
        let mut table = self.peers_mut();
        let index = table.next_index();
        let tunn = Tunn::new(
            self.secret.clone(),
            spec.public_key,
            None,
            spec.keepalive,
            index,
            None,
        );
        table.insert(Peer {
            index,
            public_key: spec.public_key,
            public_b64: crate::keys::encode(spec.public_key.as_bytes()),
            allowed: spec.allowed,
            tunn: Mutex::new(tunn),
            endpoint: Mutex::new(spec.endpoint),
            up: std::sync::atomic::AtomicBool::new(false),
            nat,
        });
    }

    pub fn peers(&self) -> std::sync::RwLockReadGuard<'_, PeerTable> {
        self.peers.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn peers_mut(&self) -> std::sync::RwLockWriteGuard<'_, PeerTable> {
        self.peers.write().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, datagram: &[u8], to: Option<SocketAddr>) {
        let Some(to) = to else {
            inc(&self.counters.drop_send_error);
            return;
        };
        // Non-blocking: a full socket buffer drops like a full link would,
        // instead of stalling the loop (and every other peer) behind it.
        match self.socket.try_send_to(datagram, to) {
            Ok(_) => inc(&self.counters.udp_tx_datagrams),
            Err(_) => inc(&self.counters.drop_send_error),
        }
    }

    /// Encrypts `packet` for `peer` and sends it (or starts a handshake and
    /// lets boringtun queue the packet until it completes).
    pub fn send_to_peer(&self, peer: &Peer, packet: &[u8], out: &mut [u8]) {
        let endpoint = peer.endpoint();
        let mut tunn = lock(&peer.tunn);
        match tunn.encapsulate(packet, out) {
            TunnResult::WriteToNetwork(datagram) => self.send(datagram, endpoint),
            TunnResult::Err(_) => inc(&self.counters.drop_send_error),
            _ => {}
        }
    }

    fn peer_for_datagram(&self, datagram: &[u8]) -> Option<Arc<Peer>> {
        let peers = self.peers();
        match Tunn::parse_incoming_packet(datagram).ok()? {
            Packet::HandshakeInit(init) => {
                let half = parse_handshake_anon(&self.secret, &self.public, &init).ok()?;
                peers.by_key(&half.peer_static_public)
            }
            Packet::HandshakeResponse(p) => peers.by_session_index(p.receiver_idx),
            Packet::PacketCookieReply(p) => peers.by_session_index(p.receiver_idx),
            Packet::PacketData(p) => peers.by_session_index(p.receiver_idx),
        }
    }

    fn note_handshake(&self, peer: &Peer, tunn: &Tunn) {
        let recent = tunn
            .time_since_last_handshake()
            .is_some_and(|t| t < PEER_DOWN_AFTER);
        if recent && !peer.up.swap(true, Ordering::Relaxed) {
            self.events
                .push(TunnelEvent::peer("peer-up", &peer.public_b64));
        }
    }

    /// Time for the NAT: nanoseconds since this tunnel started.
    pub fn now(&self) -> Timestamp {
        Timestamp::from(self.origin.elapsed())
    }

    /// A decrypted packet from `peer`: a control message goes to JavaScript;
    /// anything else, if cryptokey routing allows its source, through the
    /// peer's NAT (gateway) or as it is (client) to the device.
    async fn deliver(&self, peer: &Peer, packet: &mut [u8], scratch: &mut Scratch) {
        if control::is_control(packet) {
            match control::parse(packet) {
                Ok(msg) => {
                    inc(&self.counters.control_rx);
                    self.events.push(TunnelEvent {
                        message_type: Some(u32::from(msg.kind.to_byte())),
                        body: Some(msg.body.to_string()),
                        ..TunnelEvent::peer("control", &peer.public_b64)
                    });
                }
                Err(_) => inc(&self.counters.drop_control_malformed),
            }
            return;
        }
        match addresses(packet) {
            Some((src, _)) if peer.allows_source(src) => {}
            Some(_) => return inc(&self.counters.drop_source_not_allowed),
            None => return inc(&self.counters.drop_invalid_datagram),
        }
        if let Some(nat) = &peer.nat {
            let verdict = lock(nat).translate_outbound(packet, self.now());
            self.drain_nat_events(peer, nat);
            match verdict {
                Verdict::Forward => inc(&self.counters.nat_forwarded_out),
                Verdict::Drop(reason) => return self.nat_drops.record(reason),
                Verdict::Reply(error) => {
                    if let Some(n) = error.write(packet, &mut scratch.reply) {
                        inc(&self.counters.nat_icmp_errors_sent);
                        self.send_to_peer(peer, &scratch.reply[..n], &mut scratch.wire);
                    }
                    return;
                }
            }
        }
        match self.device.send(packet).await {
            Ok(_) => inc(&self.counters.tun_tx_packets),
            Err(_) => inc(&self.counters.drop_tun_write_error),
        }
    }

    /// The gateway peer of a key, by the gateway id it was added with.
    pub fn gateway_peer(&self, client: &ClientRole, id: u32) -> Option<Arc<Peer>> {
        let public = client.with_key(id, |k| client.gateway_key(&k.gateway))??;
        self.peers().by_key(&public)
    }

    /// Client: sends a key's buffered packets to its gateway, oldest first;
    /// returns how many went out.
    pub fn flush_key(&self, client: &ClientRole, id: u32) -> usize {
        let packets = client.gates().flush(&id);
        let n = packets.len() as u64;
        let Some(peer) = self.gateway_peer(client, id) else {
            client.counters.discarded.fetch_add(n, Ordering::Relaxed);
            return 0;
        };
        let mut out = vec![0u8; MAX_PACKET + WG_OVERHEAD];
        for p in &packets {
            self.send_to_peer(&peer, p, &mut out);
        }
        client.counters.flushed.fetch_add(n, Ordering::Relaxed);
        packets.len()
    }

    /// A packet from an application to a proxy IP: through the key's gate to
    /// the gateway that serves the resource.
    fn client_outbound(
        &self,
        client: &ClientRole,
        dst: std::net::IpAddr,
        packet: &[u8],
        out: &mut [u8],
    ) {
        let Some(id) = client.route(dst) else {
            return inc(&client.counters.drop_unknown_proxy_ip);
        };
        let Some(peer) = self.gateway_peer(client, id) else {
            return inc(&client.counters.drop_no_gateway);
        };
        let admit = client.gates().admit(&id, packet);
        match admit {
            Admit::Pass => self.send_to_peer(&peer, packet, out),
            Admit::Buffered { dropped_oldest, .. } => {
                inc(&client.counters.buffered);
                if dropped_oldest {
                    inc(&client.counters.buffer_overflow);
                }
                if client.should_report_pending(id, Instant::now())
                    && let Some(key) = client.key(id)
                {
                    self.events.push(TunnelEvent {
                        domain: Some(key.domain.clone()),
                        gateway_id: Some(key.gateway.clone()),
                        resource_id: Some(key.resource.clone()),
                        ..TunnelEvent::peer("pending-traffic", &peer.public_b64)
                    });
                }
            }
        }
    }

    fn drain_nat_events(&self, peer: &Peer, nat: &Mutex<ClientNat>) {
        let mut nat = lock(nat);
        while let Some(event) = nat.poll_event() {
            let (kind, proxy) = match event {
                NatEvent::ResolveUnmapped { proxy } => ("resolve-unmapped", proxy),
                NatEvent::RefreshExpired { proxy } => ("mapping-expired", proxy),
            };
            self.events.push(TunnelEvent {
                proxy_ip: Some(proxy.to_string()),
                ..TunnelEvent::peer(kind, &peer.public_b64)
            });
        }
    }
}

/// Buffers a loop owns, so the hot path never allocates.
pub struct Scratch {
    /// Generated ICMP errors.
    reply: Vec<u8>,
    /// Encrypted output.
    wire: Vec<u8>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            reply: vec![0u8; MAX_REPLY_LEN],
            wire: vec![0u8; MAX_PACKET + WG_OVERHEAD],
        }
    }
}

/// Device → peers.
pub async fn tun_to_udp<D: Device, S: Socket>(shared: Arc<Shared<D, S>>) {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut out = vec![0u8; MAX_PACKET + WG_OVERHEAD];
    loop {
        let n = match shared.device.recv(&mut buf).await {
            Ok(n) => n,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        inc(&shared.counters.tun_rx_packets);
        let packet = &mut buf[..n];
        let Some((_, dst)) = addresses(packet) else {
            inc(&shared.counters.drop_invalid_datagram);
            continue;
        };
        if let Some(client) = &shared.client
            && is_proxy(dst)
        {
            shared.client_outbound(client, dst, packet, &mut out);
            continue;
        }
        let Some(peer) = shared.peers().route(dst) else {
            inc(&shared.counters.drop_no_peer_for_destination);
            continue;
        };
        if let Some(nat) = &peer.nat {
            // A reply from a real server to a client: back to proxy IPs.
            let verdict = lock(nat).translate_inbound(packet, shared.now());
            match verdict {
                Verdict::Forward => inc(&shared.counters.nat_forwarded_in),
                Verdict::Drop(reason) => {
                    shared.nat_drops.record(reason);
                    continue;
                }
                // Inbound translation never generates errors; if it ever
                // does, not forwarding is the safe reading.
                Verdict::Reply(_) => continue,
            }
        }
        shared.send_to_peer(&peer, packet, &mut out);
    }
}

/// Peers → device.
pub async fn udp_to_tun<D: Device, S: Socket>(shared: Arc<Shared<D, S>>) {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut out = vec![0u8; MAX_PACKET + WG_OVERHEAD];
    let mut scratch = Scratch::new();
    loop {
        let (n, from) = match shared.socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(_) => continue,
        };
        inc(&shared.counters.udp_rx_datagrams);
        let datagram = &buf[..n];
        let Some(peer) = shared.peer_for_datagram(datagram) else {
            // Unknown or invalid key: dropped, never answered.
            inc(&shared.counters.drop_unknown_peer);
            continue;
        };
        // Decrypt under the peer's lock; the plaintext (if any) is handed to
        // the device after the lock is released, since that write may wait.
        let mut inner: Option<(usize, usize)> = None;
        let base = out.as_ptr() as usize;
        {
            let mut tunn = lock(&peer.tunn);
            let mut result = tunn.decapsulate(Some(from.ip()), datagram, &mut out);
            loop {
                match result {
                    TunnResult::Done => break,
                    TunnResult::Err(e) => {
                        if !matches!(e, WireGuardError::DuplicateCounter) {
                            inc(&shared.counters.drop_invalid_datagram);
                        }
                        break;
                    }
                    TunnResult::WriteToNetwork(reply) => {
                        shared.send(reply, Some(from));
                        result = tunn.decapsulate(None, &[], &mut out);
                    }
                    TunnResult::WriteToTunnelV4(p, _) | TunnResult::WriteToTunnelV6(p, _) => {
                        let start = p.as_ptr() as usize - base;
                        inner = Some((start, start + p.len()));
                        break;
                    }
                }
            }
            shared.note_handshake(&peer, &tunn);
        }
        if let Some((start, end)) = inner {
            // Authenticated traffic: the peer is reachable here now.
            *lock(&peer.endpoint) = Some(from);
            if end > start {
                shared
                    .deliver(&peer, &mut out[start..end], &mut scratch)
                    .await;
            }
        }
    }
}

/// WireGuard timers for every peer.
pub async fn timers<D: Device, S: Socket>(shared: Arc<Shared<D, S>>) {
    let mut out = vec![0u8; 512];
    let mut tick = tokio::time::interval(TIMER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let peers: Vec<Arc<Peer>> = shared.peers().all().cloned().collect();
        for peer in peers {
            let endpoint = peer.endpoint();
            if let Some(nat) = &peer.nat {
                lock(nat).handle_timeout(shared.now());
            }
            let mut tunn = lock(&peer.tunn);
            match tunn.update_timers(&mut out) {
                TunnResult::WriteToNetwork(datagram) => shared.send(datagram, endpoint),
                TunnResult::Err(WireGuardError::ConnectionExpired) | TunnResult::Err(_) => {}
                _ => {}
            }
            let stale = tunn
                .time_since_last_handshake()
                .is_none_or(|t| t >= PEER_DOWN_AFTER);
            if stale && peer.up.swap(false, Ordering::Relaxed) {
                shared
                    .events
                    .push(TunnelEvent::peer("peer-down", &peer.public_b64));
            }
        }
    }
}
