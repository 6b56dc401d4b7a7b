//! The tunnel's real loops over in-memory fakes: tunnels on a fake network,
//! each with a fake TUN device. WireGuard crypto, the NAT, the stub and the
//! gates are the real ones; only the kernel is missing, so this runs in
//! `cargo test` without root.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boringtun::x25519::{PublicKey, StaticSecret};
use dnsnat_core::control::{self, MessageType};
use dnsnat_core::dns::{
    IpStack, ProxyIpAllocator, Resource, ResourceTable, Stub, StubOptions, Transport,
};
use dnsnat_core::nat::Mapping;
use dnsnat_core::packet::build;
use dnsnat_core::pattern::Pattern;
use tokio::sync::mpsc;

use super::cidr::Cidr;
use super::io::{DEVICE_BATCH, Datagrams, Device, DeviceRx, DeviceTx, SOCKET_BATCH, Socket};
use super::loops::{self, PeerSpec, Shared};
use crate::client::{ClientRole, NatKey};
use crate::counters::Counters;
use crate::events::{EventSink, TunnelEvent};

/// A datagram group on the fake network: the bytes of one GSO send and its
/// segment size, delivered whole, as GRO would.
type Wire = (Vec<u8>, usize, SocketAddr);
type Net = Arc<Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Wire>>>>;

/// How many datagrams one fake send may carry: small, so that bursts in the
/// tests exercise the grouping limits.
const FAKE_GSO_SEGMENTS: usize = 4;

struct FakeSocket {
    addr: SocketAddr,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Wire>>,
    net: Net,
}

impl Socket for FakeSocket {
    async fn recv_batch(&self, rx: &mut Datagrams) -> io::Result<()> {
        let mut queue = self.rx.lock().await;
        let first = queue.recv().await.ok_or(io::ErrorKind::BrokenPipe)?;
        rx.clear();
        rx.push(&first.0, first.1, first.2);
        // Whatever else is already there comes in the same batch.
        while rx.len() < SOCKET_BATCH
            && let Ok((d, stride, from)) = queue.try_recv()
        {
            rx.push(&d, stride, from);
        }
        Ok(())
    }

    fn try_send_segments(
        &self,
        datagrams: &[u8],
        segment: usize,
        to: SocketAddr,
    ) -> io::Result<()> {
        assert!(
            datagrams.len().div_ceil(segment) <= FAKE_GSO_SEGMENTS,
            "a send carries more datagrams than the socket allows"
        );
        let net = self.net.lock().unwrap();
        // Nobody there: the datagrams are lost, as on a real network.
        if let Some(tx) = net.get(&to) {
            let _ = tx.send((datagrams.to_vec(), segment, self.addr));
        }
        Ok(())
    }

    fn max_segments(&self) -> usize {
        FAKE_GSO_SEGMENTS
    }
}

struct FakeDevice {
    from_os: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    to_os: mpsc::UnboundedSender<Vec<u8>>,
}

impl Device for FakeDevice {
    async fn recv_batch(&self, rx: &mut DeviceRx) -> io::Result<()> {
        let mut queue = self.from_os.lock().await;
        let first = queue.recv().await.ok_or(io::ErrorKind::BrokenPipe)?;
        rx.clear();
        if !rx.push(&first) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        // A packet too big for the buffers is lost, as a device would drop it.
        while rx.len() < DEVICE_BATCH
            && let Ok(p) = queue.try_recv()
        {
            rx.push(&p);
        }
        Ok(())
    }

    fn try_recv_batch(&self, rx: &mut DeviceRx) -> io::Result<()> {
        let mut queue = self
            .from_os
            .try_lock()
            .map_err(|_| io::Error::from(io::ErrorKind::WouldBlock))?;
        let p = queue
            .try_recv()
            .map_err(|_| io::Error::from(io::ErrorKind::WouldBlock))?;
        rx.clear();
        rx.push(&p);
        Ok(())
    }

    async fn send_batch(&self, tx: &mut DeviceTx) -> io::Result<()> {
        for p in tx.packets() {
            self.to_os
                .send(p.to_vec())
                .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        }
        Ok(())
    }
}

struct Node {
    shared: Arc<Shared<FakeDevice, FakeSocket>>,
    /// Packets "the OS" writes into the device.
    inject: mpsc::UnboundedSender<Vec<u8>>,
    /// Packets the tunnel wrote to the device.
    written: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::Receiver<TunnelEvent>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    public: PublicKey,
    addr: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn node(net: &Net, addr: &str, seed: u8, client: Option<Arc<ClientRole>>) -> Node {
    let addr: SocketAddr = addr.parse().unwrap();
    let (udp_tx, udp_rx) = mpsc::unbounded_channel();
    net.lock().unwrap().insert(addr, udp_tx);
    let (inject, from_os) = mpsc::unbounded_channel();
    let (to_os, written) = mpsc::unbounded_channel();
    let secret = StaticSecret::from([seed; 32]);
    let public = PublicKey::from(&secret);
    let (sink, events) = EventSink::channel(Arc::new(Counters::default()));
    let shared = Arc::new(Shared::new(
        secret,
        FakeSocket {
            addr,
            rx: tokio::sync::Mutex::new(udp_rx),
            net: net.clone(),
        },
        FakeDevice {
            from_os: tokio::sync::Mutex::new(from_os),
            to_os,
        },
        sink,
        client,
        1280,
    ));
    let tasks = vec![
        tokio::spawn(loops::tun_to_udp(shared.clone())),
        tokio::spawn(loops::udp_to_tun(shared.clone())),
        tokio::spawn(loops::timers(shared.clone())),
    ];
    Node {
        shared,
        inject,
        written,
        events,
        tasks,
        public,
        addr,
    }
}

fn peer(
    to: &Node,
    endpoint: Option<SocketAddr>,
    allowed: &[&str],
    nat: bool,
    gateway_id: Option<&str>,
) -> PeerSpec {
    PeerSpec {
        public_key: to.public,
        endpoint,
        allowed: allowed.iter().map(|a| a.parse::<Cidr>().unwrap()).collect(),
        keepalive: None,
        nat,
        gateway_id: gateway_id.map(str::to_string),
        control_budget: None,
        max_sessions: None,
    }
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("nothing arrived within 5 s")
        .expect("channel closed")
}

async fn nothing<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>) {
    if let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("expected nothing, got {p:?}");
    }
}

async fn event(rx: &mut mpsc::Receiver<TunnelEvent>, kind: &str) -> TunnelEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event within 5 s"))
            .expect("events closed");
        if e.kind == kind {
            return e;
        }
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Two plain tunnels: A (100.64.0.1) knows B's endpoint, B learns A's.
fn pair(net: &Net) -> (Node, Node) {
    let a = node(net, "10.0.0.1:51820", 1, None);
    let b = node(net, "10.0.0.2:51820", 2, None);
    a.shared
        .add_peer(peer(&b, Some(b.addr), &["100.64.0.2/32"], false, None));
    b.shared
        .add_peer(peer(&a, None, &["100.64.0.1/32"], false, None));
    (a, b)
}

#[tokio::test]
async fn packets_cross_both_ways_after_a_handshake_and_peers_come_up() {
    let net = Net::default();
    let (mut a, mut b) = pair(&net);
    let p = build::udp(sa("100.64.0.1:4000"), sa("100.64.0.2:53"), 20, true);
    a.inject.send(p.clone()).unwrap();
    assert_eq!(
        next(&mut b.written).await,
        p,
        "the packet arrives unchanged"
    );
    event(&mut a.events, "peer-up").await;
    event(&mut b.events, "peer-up").await;
    // B learned A's endpoint from the authenticated handshake and can answer.
    let r = build::udp(sa("100.64.0.2:53"), sa("100.64.0.1:4000"), 30, true);
    b.inject.send(r.clone()).unwrap();
    assert_eq!(next(&mut a.written).await, r);
}

#[tokio::test]
async fn control_messages_become_events_and_never_reach_the_device() {
    let net = Net::default();
    let (a, mut b) = pair(&net);
    let body = r#"{"resource":"web","domain":"a.corp.example","proxy_ips":[],"seq":1}"#;
    let packet = control::build(MessageType::AssignedIps, body).unwrap();
    let bp = a.shared.peers().by_key(b.public.as_bytes()).unwrap();
    a.shared.send_to_peer(&bp, &packet);
    let e = event(&mut b.events, "control").await;
    assert_eq!(e.body.as_deref(), Some(body));
    assert_eq!(e.message_type, Some(0));
    nothing(&mut b.written).await;
}

#[tokio::test]
async fn a_peer_over_its_control_budget_is_dropped_counted_and_reported_once() {
    let net = Net::default();
    let a = node(&net, "10.0.0.1:51820", 1, None);
    let mut b = node(&net, "10.0.0.2:51820", 2, None);
    a.shared
        .add_peer(peer(&b, Some(b.addr), &["100.64.0.2/32"], false, None));
    b.shared.add_peer(PeerSpec {
        control_budget: Some((5, 5)),
        ..peer(&a, None, &["100.64.0.1/32"], false, None)
    });
    let packet = control::build(MessageType::Goodbye, "{}").unwrap();
    let bp = a.shared.peers().by_key(b.public.as_bytes()).unwrap();
    for _ in 0..50 {
        a.shared.send_to_peer(&bp, &packet);
    }
    let mut controls = 0;
    let mut reported = 0.0;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), b.events.recv()).await
    {
        match e.kind.as_str() {
            "control" => controls += 1,
            "control-rate-limited" => reported += e.count.unwrap(),
            _ => {}
        }
    }
    // The burst passes (a token may come back while the 50 are sent); the
    // rest is counted, and reported at least once without one event per drop.
    assert!((5..=7).contains(&controls), "{controls} passed");
    let dropped = b
        .shared
        .counters
        .drop_control_rate_limited
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dropped, 50 - controls);
    assert!(reported >= 1.0 && reported <= dropped as f64, "{reported}");
}

#[tokio::test]
async fn a_source_the_peer_may_not_use_is_dropped_and_counted() {
    let net = Net::default();
    let (a, mut b) = pair(&net);
    // A routes 100.64.0.2 to B, but the packet claims to come from 100.64.0.9.
    a.inject
        .send(build::udp(sa("100.64.0.9:1"), sa("100.64.0.2:2"), 8, true))
        .unwrap();
    nothing(&mut b.written).await;
    let dropped = b
        .shared
        .counters
        .drop_source_not_allowed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dropped, 1);
}

#[tokio::test]
async fn an_unknown_key_is_dropped_and_never_answered() {
    let net = Net::default();
    let (_a, b) = pair(&net);
    let mut stranger = node(&net, "10.0.0.9:51820", 9, None);
    stranger
        .shared
        .add_peer(peer(&b, Some(b.addr), &["100.64.0.2/32"], false, None));
    stranger
        .inject
        .send(build::udp(sa("100.64.0.9:1"), sa("100.64.0.2:2"), 8, true))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = &b.shared.counters;
    assert!(
        c.drop_unknown_peer
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert_eq!(
        c.udp_tx_datagrams
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    nothing(&mut stranger.written).await;
}

/// A client tunnel and a gateway tunnel that NATs for it.
fn client_and_gateway(net: &Net, client: Option<Arc<ClientRole>>) -> (Node, Node) {
    let c = node(net, "10.0.0.2:40000", 3, client);
    let g = node(net, "10.0.0.1:51820", 4, None);
    c.shared.add_peer(peer(
        &g,
        Some(g.addr),
        &["100.96.0.0/11", "100.64.0.1/32"],
        false,
        Some("gw1"),
    ));
    g.shared
        .add_peer(peer(&c, None, &["100.64.0.2/32"], true, None));
    (c, g)
}

fn map(g: &Node, client: &Node, proxy: &str, real: Option<&str>) {
    let p = g.shared.peers().by_key(client.public.as_bytes()).unwrap();
    let mapping = match real {
        Some(r) => Mapping::to(r.parse().unwrap()),
        None => Mapping::unresolved(),
    };
    p.nat
        .as_ref()
        .unwrap()
        .lock()
        .unwrap()
        .set_mapping(proxy.parse().unwrap(), mapping, g.shared.now())
        .unwrap();
}

#[tokio::test]
async fn the_gateway_translates_to_the_real_address_and_back() {
    let net = Net::default();
    let (mut c, mut g) = client_and_gateway(&net, None);
    map(&g, &c, "100.96.0.1", Some("198.18.2.2"));
    c.inject
        .send(build::udp(
            sa("100.64.0.2:5000"),
            sa("100.96.0.1:53"),
            12,
            true,
        ))
        .unwrap();
    let out = next(&mut g.written).await;
    build::verify_checksums(&out).unwrap();
    assert_eq!(
        &out[12..16],
        &[100, 64, 0, 2],
        "source: the client's tunnel IP"
    );
    assert_eq!(
        &out[16..20],
        &[198, 18, 2, 2],
        "destination: the real address"
    );
    let port = u16::from_be_bytes([out[20], out[21]]);
    // The server answers; the reply goes back to the client from the proxy IP.
    let reply = build::udp(
        SocketAddr::new("198.18.2.2".parse().unwrap(), 53),
        SocketAddr::new("100.64.0.2".parse().unwrap(), port),
        40,
        true,
    );
    g.inject.send(reply).unwrap();
    let back = next(&mut c.written).await;
    build::verify_checksums(&back).unwrap();
    assert_eq!(&back[12..16], &[100, 96, 0, 1]);
    assert_eq!(u16::from_be_bytes([back[22], back[23]]), 5000);
}

#[tokio::test]
async fn an_unresolved_proxy_ip_gets_icmp_unreachable_and_a_resolve_event() {
    let net = Net::default();
    let (mut c, mut g) = client_and_gateway(&net, None);
    map(&g, &c, "100.96.0.9", None);
    c.inject
        .send(build::udp(
            sa("100.64.0.2:5000"),
            sa("100.96.0.9:80"),
            12,
            true,
        ))
        .unwrap();
    let icmp = next(&mut c.written).await;
    build::verify_checksums(&icmp).unwrap();
    assert_eq!(icmp[9], 1, "ICMP");
    assert_eq!(&icmp[12..16], &[100, 96, 0, 9], "from the proxy IP");
    assert_eq!((icmp[20], icmp[21]), (3, 1), "host unreachable");
    let e = event(&mut g.events, "resolve-unmapped").await;
    assert_eq!(e.proxy_ip.as_deref(), Some("100.96.0.9"));
    nothing(&mut g.written).await;
}

fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[tokio::test]
async fn the_client_buffers_a_new_domain_until_its_gate_opens_then_flushes_in_order() {
    let resources = ResourceTable::new([Resource {
        id: "web".into(),
        gateway_id: "gw1".into(),
        pattern: Pattern::parse("*.corp.example").unwrap(),
        ip_stack: IpStack::Ipv4,
    }])
    .unwrap();
    let role = Arc::new(ClientRole::new(
        Stub::new(resources, ProxyIpAllocator::new(), StubOptions::default()),
        Vec::new(),
    ));
    let net = Net::default();
    let (mut c, mut g) = client_and_gateway(&net, Some(role.clone()));
    // The stub hands out the domain's proxy IPs, as for an application.
    let mut answer = Vec::new();
    role.stub()
        .handle_query(&query("app.corp.example"), Transport::Udp, &mut answer);
    let proxy: IpAddr = role.stub().allocator().get("app.corp.example").unwrap().v4[0].into();
    map(&g, &c, &proxy.to_string(), Some("198.18.2.2"));

    let first = build::udp(
        SocketAddr::new("100.64.0.2".parse().unwrap(), 7000),
        SocketAddr::new(proxy, 9),
        1,
        true,
    );
    let second = build::udp(
        SocketAddr::new("100.64.0.2".parse().unwrap(), 7001),
        SocketAddr::new(proxy, 9),
        2,
        true,
    );
    c.inject.send(first).unwrap();
    c.inject.send(second).unwrap();
    let pending = event(&mut c.events, "pending-traffic").await;
    assert_eq!(pending.domain.as_deref(), Some("app.corp.example"));
    nothing(&mut g.written).await;

    let id = role
        .key_id(NatKey {
            gateway: "gw1".into(),
            domain: "app.corp.example".into(),
            resource: "web".into(),
        })
        .expect("the domain holds proxy IPs");
    role.gates().set_mode(id, dnsnat_core::gate::GateMode::Pass);
    assert_eq!(c.shared.flush_key(&role, id), 2);
    let a = next(&mut g.written).await;
    let b = next(&mut g.written).await;
    assert_eq!(u16::from_be_bytes([a[20], a[21]]), 7000, "oldest first");
    assert_eq!(u16::from_be_bytes([b[20], b[21]]), 7001);
}

#[tokio::test]
async fn a_burst_leaves_in_few_sends_and_arrives_whole_and_in_order() {
    let net = Net::default();
    let (a, mut b) = pair(&net);
    let first = build::udp(sa("100.64.0.1:4000"), sa("100.64.0.2:53"), 20, true);
    a.inject.send(first.clone()).unwrap();
    assert_eq!(next(&mut b.written).await, first);
    let sends_before = a.shared.counters.udp_tx_sends.load(Ordering::Relaxed);
    let sent_before = a.shared.counters.udp_tx_datagrams.load(Ordering::Relaxed);
    // Equal sizes group; a short one ends a group; a bigger one starts one.
    let sizes = [
        1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 300, 1000, 1000,
    ];
    let burst: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let port = 5000 + u16::try_from(i).unwrap();
            build::udp(
                sa(&format!("100.64.0.1:{port}")),
                sa("100.64.0.2:53"),
                n,
                true,
            )
        })
        .collect();
    // Queued before the loop wakes up, so it reads them as one batch.
    for p in &burst {
        a.inject.send(p.clone()).unwrap();
    }
    for p in &burst {
        assert_eq!(&next(&mut b.written).await, p, "in order, unchanged");
    }
    let sends = a.shared.counters.udp_tx_sends.load(Ordering::Relaxed) - sends_before;
    let sent = a.shared.counters.udp_tx_datagrams.load(Ordering::Relaxed) - sent_before;
    assert_eq!(sent, 12);
    // 4 + 4 + (1000, 300) + 2 with four datagrams per send at most; more if
    // the loop happened to wake up in the middle of the burst.
    assert!((4..12).contains(&sends), "{sends} sends for 12 datagrams");
}

#[tokio::test]
async fn a_packet_larger_than_the_receive_buffers_is_dropped_and_counted() {
    let net = Net::default();
    let (a, mut b) = pair(&net);
    let first = build::udp(sa("100.64.0.1:4000"), sa("100.64.0.2:53"), 20, true);
    a.inject.send(first.clone()).unwrap();
    assert_eq!(next(&mut b.written).await, first);
    // A's device reads up to 1,500 bytes; a peer with a larger MTU sends
    // more than B's buffers for decrypted packets hold.
    let big = build::udp(sa("100.64.0.1:4000"), sa("100.64.0.2:53"), 1400, true);
    let bp = a.shared.peers().by_key(b.public.as_bytes()).unwrap();
    let mut huge = big.clone();
    huge.resize(4000, 0);
    a.shared.send_to_peer(&bp, &huge);
    a.inject.send(big.clone()).unwrap();
    assert_eq!(
        next(&mut b.written).await,
        big,
        "the next packet still arrives"
    );
    assert_eq!(b.shared.counters.drop_oversized.load(Ordering::Relaxed), 1);
}
