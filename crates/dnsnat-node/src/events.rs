//! Control events for JavaScript, delivered in batches.
//!
//! The loops never call into JavaScript: they push onto a bounded channel, and
//! one task drains whatever has accumulated into a single call. Under a burst
//! this turns N events into a handful of calls; when the channel is full the
//! event is counted and dropped rather than blocking a packet loop.
//!
//! Bounded end to end: the task waits until JavaScript has handled a batch
//! before it hands over the next, so at most one batch sits in Node's queue
//! (whose own size is capped too) and the rest wait in the channel, whose
//! bound is the only place events are dropped. A busy event loop therefore
//! costs dropped, counted events, never memory.

use napi::Status;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use tokio::sync::mpsc;

use crate::counters::{Counters, inc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Events queued before the loops start dropping them.
const QUEUE: usize = 4096;
/// Largest batch handed to JavaScript in one call.
const MAX_BATCH: usize = 256;

/// One resource a DNS query matched, as JavaScript sees it.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct DnsMatch {
    pub gateway_id: String,
    pub resource_id: String,
    pub proxy_ips: Vec<String>,
}

/// One control-plane event.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct TunnelEvent {
    /// `control` (a control message arrived), `peer-up` (handshake done),
    /// `peer-down` (no handshake for too long), and on a gateway
    /// `resolve-unmapped` (traffic for a proxy IP without a real address) and
    /// `mapping-expired` (a new session used a mapping past its DNS TTL).
    pub kind: String,
    /// Base64 public key of the peer concerned.
    pub peer: String,
    /// Control message type byte (docs/architecture.md#control-protocol), for `control`.
    pub message_type: Option<u32>,
    /// Control message JSON body, for `control`.
    pub body: Option<String>,
    /// The proxy IP concerned, for `resolve-unmapped` and `mapping-expired`.
    pub proxy_ip: Option<String>,
    /// Client: the domain of `dns-query`, `pending-traffic`, `proxy-ips-exhausted`.
    pub domain: Option<String>,
    /// Client: the DNS query type of `dns-query` (1 A, 28 AAAA, 65 HTTPS, …).
    pub query_type: Option<u32>,
    /// Client: `dns-query` allocated the domain's proxy IPs (persist the table).
    pub newly_allocated: Option<bool>,
    /// Client: the resources a `dns-query` matched, with their proxy IPs.
    pub matches: Option<Vec<DnsMatch>>,
    /// Client: how many non-resource queries a `queries-seen` stands for.
    pub count: Option<f64>,
    /// Client: the key of `pending-traffic` (traffic waits in a buffer).
    pub gateway_id: Option<String>,
    pub resource_id: Option<String>,
    /// Client: the domains of `proxy-ips-released` (idle, or evicted for a
    /// new name): their entries go.
    pub domains: Option<Vec<String>>,
}

impl TunnelEvent {
    pub fn peer(kind: &str, peer: &str) -> TunnelEvent {
        TunnelEvent {
            kind: kind.into(),
            peer: peer.into(),
            message_type: None,
            body: None,
            proxy_ip: None,
            domain: None,
            query_type: None,
            newly_allocated: None,
            matches: None,
            count: None,
            gateway_id: None,
            resource_id: None,
            domains: None,
        }
    }
}

/// Batches Node's queue may hold for this callback; with the wait for each
/// call's completion only one is ever there, this is the backstop.
pub const CALLBACK_QUEUE: usize = 4;

pub type EventCallback = ThreadsafeFunction<
    Vec<TunnelEvent>,
    (),
    Vec<TunnelEvent>,
    Status,
    false,
    false,
    CALLBACK_QUEUE,
>;

/// The kinds the client's stub pushes; every other event may change the
/// state machine's entries (see [`EventSink::others_pushed`]).
const STUB_KINDS: [&str; 3] = ["dns-query", "queries-seen", "proxy-ips-exhausted"];

#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<TunnelEvent>,
    counters: Arc<Counters>,
    others: Arc<AtomicU64>,
}

impl EventSink {
    /// A sink and the receiving end, without JavaScript (the tests read events here).
    pub fn channel(counters: Arc<Counters>) -> (EventSink, mpsc::Receiver<TunnelEvent>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let others = Arc::new(AtomicU64::new(0));
        (
            EventSink {
                tx,
                counters,
                others,
            },
            rx,
        )
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// How many events other than the stub's were queued so far (control
    /// messages, peers, pending traffic): the client's stub reports a repeated
    /// DNS query again once this moves (docs/decisions.md, "Client: repeated DNS queries reach JavaScript as a count").
    pub fn others_pushed(&self) -> Arc<AtomicU64> {
        self.others.clone()
    }

    /// Queues an event; false when the queue was full and it was dropped.
    pub fn push(&self, event: TunnelEvent) -> bool {
        if !STUB_KINDS.contains(&event.kind.as_str()) {
            // Counted before the event is queued: a stub batch taken after
            // this sees the change and lets nothing that follows it be held back.
            self.others.fetch_add(1, Ordering::SeqCst);
        }
        if self.tx.try_send(event).is_err() {
            inc(&self.counters.drop_event_queue_full);
            return false;
        }
        true
    }
}

/// The sink and the task that delivers its batches to JavaScript; the task
/// ends when every sink is dropped (or it is aborted), and drops the callback
/// with it so Node can exit.
pub fn delivery(
    callback: EventCallback,
    counters: Arc<Counters>,
) -> (EventSink, impl Future<Output = ()> + Send + 'static) {
    let (sink, mut rx) = EventSink::channel(counters);
    let task = async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let out = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
            // Resolves once JavaScript has run the callback. An error means
            // Node is shutting down or the callback threw (JavaScript logs
            // and counts that itself): either way the next batch may go.
            if let Err(e) = callback.call_async(out).await
                && e.status == Status::Closing
            {
                break;
            }
        }
    };
    (sink, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_other_than_the_stubs_are_counted_and_a_full_queue_says_so() {
        let (sink, mut rx) = EventSink::channel(Arc::new(Counters::default()));
        let others = sink.others_pushed();
        assert!(sink.push(TunnelEvent::peer("dns-query", "")));
        assert!(sink.push(TunnelEvent::peer("queries-seen", "")));
        assert_eq!(others.load(Ordering::SeqCst), 0);
        assert!(sink.push(TunnelEvent::peer("control", "k")));
        assert!(sink.push(TunnelEvent::peer("pending-traffic", "")));
        assert_eq!(others.load(Ordering::SeqCst), 2);
        for _ in 4..QUEUE {
            assert!(sink.push(TunnelEvent::peer("queries-seen", "")));
        }
        assert!(!sink.push(TunnelEvent::peer("dns-query", "")));
        assert_eq!(rx.try_recv().unwrap().kind, "dns-query");
    }
}
