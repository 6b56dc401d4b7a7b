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

use dnsnat_core::dns::{StubAction, TcpFrameDecoder, Transport, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::ClientRole;

/// Per upstream attempt.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest DNS message over UDP we read (EDNS0 allows up to 65,535).
const MAX_UDP: usize = 65_535;

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

pub async fn serve_udp(client: Arc<ClientRole>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_UDP];
    let mut out = Vec::with_capacity(1500);
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = &buf[..n];
        let action = client
            .stub_now()
            .handle_query(query, Transport::Udp, &mut out);
        answered(&client);
        match action {
            StubAction::Answer => {
                let _ = socket.send_to(&out, from).await;
            }
            StubAction::Forward => {
                let (client, socket, query) = (client.clone(), socket.clone(), query.to_vec());
                tokio::spawn(async move {
                    match forward_udp(&client.upstream, &query).await {
                        Some(answer) => {
                            let _ = socket.send_to(&answer, from).await;
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
            StubAction::Drop(_) => {}
        }
    }
}

async fn serve_connection(client: Arc<ClientRole>, mut stream: TcpStream) {
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    let mut frame = Vec::new();
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
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
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(client.clone(), stream));
        }
    }
}

/// Drains the stub's events into the tunnel's event stream whenever a query
/// produced some; a short pause lets a burst of queries share one batch.
pub async fn pump_events(client: Arc<ClientRole>, sink: crate::tunnel::EventSinkHandle) {
    client.follow_events(sink.others_pushed());
    loop {
        client.events_ready.notified().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
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
