//! The stub's sockets: UDP and TCP on the sentinel addresses, answered by the
//! core stub, and the relay of everything else to the upstream resolvers.
//!
//! Forwarded queries are relayed byte for byte (the stub never rewrites what
//! it does not answer). Each forward runs in its own task with a deadline, so
//! a slow upstream never holds up answers the stub gives locally.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dnsnat_core::dns::message::{RCODE_SERVFAIL, RawHeader, question_section};
use dnsnat_core::dns::{StubAction, TcpFrameDecoder, Transport, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::ClientRole;
use crate::udp::{BatchSocket, Datagrams, MAX_UDP};

/// Per upstream attempt.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// A TCP connection with no complete query for this long is closed (RFC
/// 7766 suggests seconds; an open idle connection holds one of the few slots).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pauses after a failing `accept` or `recv` (out of descriptors, say): the
/// first short, doubling to the last, so a persistent error never spins.
const SOCKET_ERROR_PAUSE: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));
/// Least time between two batches of the stub's events.
const EVENT_BATCH_WINDOW: Duration = Duration::from_millis(2);

/// The stub's UDP socket and TCP listener on `addr`, bound to `device` when
/// given (`SO_BINDTODEVICE`: only packets that arrive on that interface are
/// received).
pub fn bind(addr: SocketAddr, device: Option<&str>) -> std::io::Result<(UdpSocket, TcpListener)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = |kind: Type, protocol: Protocol| -> std::io::Result<Socket> {
        let s = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        if let Some(name) = device {
            s.bind_device(Some(name.as_bytes())).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot bind to device {name}: {e}"))
            })?;
        }
        s.set_nonblocking(true)?;
        Ok(s)
    };
    let context = |what: &str, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot listen on {what} {addr}: {e}"))
    };
    let udp = open(Type::DGRAM, Protocol::UDP).map_err(|e| context("udp", e))?;
    udp.bind(&addr.into()).map_err(|e| context("udp", e))?;
    let tcp = open(Type::STREAM, Protocol::TCP).map_err(|e| context("tcp", e))?;
    tcp.set_reuse_address(true).map_err(|e| context("tcp", e))?;
    tcp.bind(&addr.into()).map_err(|e| context("tcp", e))?;
    tcp.listen(128).map_err(|e| context("tcp", e))?;
    Ok((
        UdpSocket::from_std(udp.into())?,
        TcpListener::from_std(tcp.into())?,
    ))
}

/// A SERVFAIL for `query`, with its question, so that the resolver that
/// asked matches it to its query and moves on at once.
fn servfail(query: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(header) = RawHeader::read(query) else {
        return false;
    };
    header.write_error(RCODE_SERVFAIL, out);
    if let Some(question) = question_section(query) {
        out[4..6].copy_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(question);
    }
    true
}

/// Doubles a pause after a socket error, up to the longest.
fn pause_after_error(client: &ClientRole, pause: &mut Duration) -> Duration {
    client
        .counters
        .dns_socket_errors
        .fetch_add(1, Ordering::Relaxed);
    let now = *pause;
    *pause = (*pause * 2).min(SOCKET_ERROR_PAUSE.1);
    now
}

fn answered(client: &ClientRole) {
    if client.stub().has_events() {
        client.events_ready.notify_one();
    }
}

async fn forward_udp(upstream: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; MAX_UDP];
        let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
        // Ignore anything that is not the answer to this query (wrong source
        // or id): a spoofed or stray datagram must not become the answer.
        while let Ok(Ok((n, from))) =
            tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await
        {
            if from == *server && buf.get(..2) == Some(id) {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

async fn forward_tcp(upstream: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for server in upstream {
        let attempt = async {
            let mut s = TcpStream::connect(server).await.ok()?;
            let mut frame = Vec::with_capacity(query.len() + 2);
            encode_frame(query, &mut frame).ok()?;
            s.write_all(&frame).await.ok()?;
            let len = s.read_u16().await.ok()?;
            let mut buf = vec![0u8; usize::from(len)];
            s.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        if let Ok(Some(answer)) = tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            return Some(answer);
        }
    }
    None
}

/// Queries received with one system call (`recvmmsg`), at most.
const UDP_BATCH: usize = 32;

/// The answers of one batch, back to back, with where each goes.
#[derive(Default)]
struct Answers {
    bytes: Vec<u8>,
    to: Vec<(usize, usize, SocketAddr)>,
}

pub async fn serve_udp(client: Arc<ClientRole>, socket: Arc<BatchSocket>) {
    // Under load one system call brings a batch of queries, answered under
    // one lock of the stub; with GRO a buffer may hold several datagrams of
    // one sender.
    let mut queries = Datagrams::new(UDP_BATCH);
    let mut out = Vec::with_capacity(1500);
    let mut answers = Answers::default();
    let mut forwards: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    let mut gso = Vec::new();
    let mut pause = SOCKET_ERROR_PAUSE.0;
    loop {
        if socket.recv(&mut queries).await.is_err() {
            tokio::time::sleep(pause_after_error(&client, &mut pause)).await;
            continue;
        }
        pause = SOCKET_ERROR_PAUSE.0;
        answers.bytes.clear();
        answers.to.clear();
        {
            let mut stub = client.stub_now();
            for (query, from) in queries.iter() {
                match stub.handle_query(query, Transport::Udp, &mut out) {
                    StubAction::Answer => {
                        let start = answers.bytes.len();
                        answers.bytes.extend_from_slice(&out);
                        answers.to.push((start, answers.bytes.len(), from));
                    }
                    StubAction::Forward => forwards.push((query.to_vec(), from)),
                    StubAction::Drop(_) => {}
                }
            }
            if stub.has_events() {
                client.events_ready.notify_one();
            }
        }
        send_answers(&socket, &mut answers, &mut gso).await;
        for (query, from) in forwards.drain(..) {
            spawn_forward(&client, &socket, query, from).await;
        }
    }
}

/// Sends a batch's answers. Answers of the same size to the same client go
/// out together where the kernel has UDP GSO (one `sendmsg`, one route
/// lookup, for up to `max_segments` datagrams that the kernel splits again);
/// the order of answers to different queries does not matter in DNS.
async fn send_answers(socket: &BatchSocket, answers: &mut Answers, gso: &mut Vec<u8>) {
    let max_segments = socket.max_segments();
    if max_segments > 1 && answers.to.len() > 1 {
        answers
            .to
            .sort_unstable_by_key(|&(start, end, to)| (to, end - start, start));
    }
    let mut i = 0;
    while i < answers.to.len() {
        let (start, end, to) = answers.to[i];
        let size = end - start;
        let mut run = 1;
        while run < max_segments
            && (run + 1) * size <= MAX_UDP
            && answers
                .to
                .get(i + run)
                .is_some_and(|&(s, e, t)| t == to && e - s == size)
        {
            run += 1;
        }
        let group = &answers.to[i..i + run];
        i += run;
        if run > 1 {
            gso.clear();
            for &(s, e, _) in group {
                gso.extend_from_slice(&answers.bytes[s..e]);
            }
            if socket.send(gso, size, to).await.is_ok() {
                continue;
            }
            // GSO refused (quinn-udp turns it off for the next batches): one
            // datagram at a time.
        }
        for &(s, e, to) in group {
            let _ = socket.send(&answers.bytes[s..e], e - s, to).await;
        }
    }
}

/// Relays one query to the upstream resolvers in its own task, or answers
/// SERVFAIL at once when `MAX_FORWARDS` are already in flight.
async fn spawn_forward(
    client: &Arc<ClientRole>,
    socket: &Arc<BatchSocket>,
    query: Vec<u8>,
    from: SocketAddr,
) {
    let Ok(permit) = client.forwards.clone().try_acquire_owned() else {
        client
            .counters
            .dns_forwards_refused
            .fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        if servfail(&query, &mut out) {
            let _ = socket.send(&out, out.len(), from).await;
        }
        return;
    };
    let (client, socket) = (client.clone(), socket.clone());
    tokio::spawn(async move {
        let _permit = permit;
        match forward_udp(&client.upstream, &query).await {
            Some(answer) => {
                let _ = socket.send(&answer, answer.len(), from).await;
            }
            None => {
                client
                    .counters
                    .dns_upstream_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

async fn serve_connection(client: Arc<ClientRole>, mut stream: TcpStream) {
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    let mut frame = Vec::new();
    loop {
        let n = match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        decoder.push(&buf[..n]);
        while let Some(query) = decoder.next_frame().map(<[u8]>::to_vec) {
            let action = client
                .stub_now()
                .handle_query(&query, Transport::Tcp, &mut out);
            answered(&client);
            let answer = match action {
                StubAction::Answer => Some(std::mem::take(&mut out)),
                StubAction::Forward => {
                    let a = forward_tcp(&client.upstream, &query).await;
                    if a.is_none() {
                        client
                            .counters
                            .dns_upstream_failures
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    a
                }
                StubAction::Drop(_) => None,
            };
            if let Some(answer) = answer {
                frame.clear();
                if encode_frame(&answer, &mut frame).is_err()
                    || stream.write_all(&frame).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

pub async fn serve_tcp(client: Arc<ClientRole>, listener: TcpListener) {
    let mut pause = SOCKET_ERROR_PAUSE.0;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(pause_after_error(&client, &mut pause)).await;
                continue;
            }
        };
        pause = SOCKET_ERROR_PAUSE.0;
        let Ok(permit) = client.tcp_connections.clone().try_acquire_owned() else {
            // Dropping the stream closes it: the resolver retries or moves on.
            client
                .counters
                .dns_tcp_refused
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let client = client.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(client, stream).await;
        });
    }
}

/// How often traffic is told to the stub and idle names are released. Short:
/// under a flood of new names the least recently used goes within a second
/// or two, and a name carrying traffic must have been marked used by then.
/// Each round costs the addresses used since the last one.
const AGE_INTERVAL: Duration = Duration::from_millis(250);

/// Tells the stub which names carried traffic and releases the idle ones,
/// every `AGE_INTERVAL`.
pub async fn age_names(client: Arc<ClientRole>, idle_ms: u64) {
    let mut tick = tokio::time::interval(AGE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        client.age_names(idle_ms);
    }
}

/// Drains the stub's events into the tunnel's event stream whenever a query
/// produced some, at most one batch per `EVENT_BATCH_WINDOW`.
pub async fn pump_events(client: Arc<ClientRole>, sink: crate::events::EventSink) {
    client.follow_events(sink.others_pushed());
    let mut last_batch: Option<tokio::time::Instant> = None;
    loop {
        client.events_ready.notified().await;
        // Batches are at least EVENT_BATCH_WINDOW apart, so under a storm of
        // queries JavaScript gets one per window; but the first after a
        // quiet spell goes at once: it is usually a new name, whose setup
        // (and the application's first connection) waits on this event.
        if let Some(last) = last_batch {
            tokio::time::sleep_until(last + EVENT_BATCH_WINDOW).await;
        }
        last_batch = Some(tokio::time::Instant::now());
        let (events, epoch) = client.take_events();
        for e in events {
            let report = e.kind == "dns-query";
            if !sink.push(e) && report {
                // A report JavaScript never sees must not hold back repeats.
                client.note_command();
            }
        }
        if client.epoch() != epoch {
            // Something may have been queued ahead of this batch after it was
            // taken: the repeats it left out go in the next one, as reports.
            client.stub().report_last_held();
            client.events_ready.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{MAX_FORWARDS, MAX_TCP_CONNECTIONS};
    use dnsnat_core::dns::{IpStack, ProxyIpAllocator, Resource, ResourceTable, Stub, StubOptions};
    use dnsnat_core::pattern::Pattern;

    /// An A query for `name` with id `id`, by hand.
    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    /// A client role whose only upstream is a socket that never answers.
    async fn role_with_silent_upstream() -> (Arc<ClientRole>, UdpSocket) {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stub = Stub::new(
            ResourceTable::default(),
            ProxyIpAllocator::new(),
            StubOptions::default(),
        );
        let upstream = vec![silent.local_addr().unwrap()];
        (Arc::new(ClientRole::new(stub, upstream)), silent)
    }

    #[tokio::test]
    async fn forwards_past_the_bound_are_answered_servfail_at_once() {
        let (client, _silent) = role_with_silent_upstream().await;
        let server =
            Arc::new(BatchSocket::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap());
        let addr = server.local_addr().unwrap();
        let task = tokio::spawn(serve_udp(client.clone(), server));
        let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let extra = 40;
        let total = (MAX_FORWARDS + extra) as u16;
        for id in 0..total {
            app.send_to(&query(id, &format!("n{id}.public.example")), addr)
                .await
                .unwrap();
        }
        // The upstream never answers, so every answer is a refusal; the
        // first MAX_FORWARDS queries wait on the upstream for 3 s.
        let mut buf = vec![0u8; 1500];
        let mut servfails = 0;
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(1500), app.recv_from(&mut buf)).await
        {
            assert_eq!(buf[3] & 0x0f, RCODE_SERVFAIL, "{:?}", &buf[..n]);
            assert_eq!(
                u16::from_be_bytes([buf[4], buf[5]]),
                1,
                "the question is echoed"
            );
            servfails += 1;
        }
        assert_eq!(servfails, extra);
        assert_eq!(
            client.counters.dns_forwards_refused.load(Ordering::Relaxed),
            extra as u64
        );
        assert_eq!(client.forwards.available_permits(), 0);
        task.abort();
    }

    #[tokio::test]
    async fn tcp_connections_past_the_bound_are_closed() {
        let (client, _silent) = role_with_silent_upstream().await;
        let (_udp, listener) = bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve_tcp(client.clone(), listener));
        let mut open = Vec::new();
        for _ in 0..MAX_TCP_CONNECTIONS {
            open.push(TcpStream::connect(addr).await.unwrap());
        }
        // Wait until the server holds them all.
        while client.tcp_connections.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut byte))
            .await
            .expect("the extra connection is closed at once");
        assert!(matches!(read, Ok(0) | Err(_)));
        assert_eq!(client.counters.dns_tcp_refused.load(Ordering::Relaxed), 1);
        // Closing one frees its slot.
        drop(open.pop());
        while client.tcp_connections.available_permits() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
    }

    #[tokio::test]
    async fn a_burst_of_queries_is_answered_one_for_one_and_repeats_are_counted() {
        let resources = ResourceTable::new([Resource {
            id: "web".into(),
            gateway_id: "gw".into(),
            pattern: Pattern::parse("*.corp.example").unwrap(),
            ip_stack: IpStack::Ipv4,
        }])
        .unwrap();
        let stub = Stub::new(resources, ProxyIpAllocator::new(), StubOptions::default());
        let client = Arc::new(ClientRole::new(stub, Vec::new()));
        let server =
            Arc::new(BatchSocket::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap());
        let addr = server.local_addr().unwrap();
        let task = tokio::spawn(serve_udp(client.clone(), server));

        let app = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        const N: u16 = 200;
        // Sent back to back, so that the server finds many waiting at once.
        for id in 0..N {
            let name = format!("h{}.corp.example", id % 20);
            app.send_to(&query(id, &name), addr).await.unwrap();
        }
        let mut seen = vec![false; usize::from(N)];
        let mut buf = vec![0u8; 1500];
        for _ in 0..N {
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), app.recv_from(&mut buf))
                .await
                .expect("an answer to every query")
                .unwrap();
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            assert!(!seen[usize::from(id)], "one answer per query");
            seen[usize::from(id)] = true;
            // NOERROR, one question, four A records.
            assert_eq!(buf[3] & 0x0f, 0);
            assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 4, "{:?}", &buf[..n]);
        }
        let stats = client.stub().stats();
        assert_eq!(stats.queries, u64::from(N));
        assert_eq!(stats.resource_queries, u64::from(N));
        // 20 names, one batch of events: each reported once.
        assert_eq!(
            stats.events_coalesced + stats.events_repeats,
            u64::from(N) - 20
        );
        let events = client.take_events().0;
        let reports = events.iter().filter(|e| e.kind == "dns-query").count();
        assert_eq!(reports, 20);
        task.abort();
    }
}
