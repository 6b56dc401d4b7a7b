//! What the stub tells the TypeScript layer, batched.
//!
//! The stub pushes into an [`EventQueue`]; the runtime drains it whenever it
//! hands a batch to JavaScript (never one call per packet). Within one batch:
//!
//! - a resource query for a domain already in the batch is coalesced (the state
//!   machine reacts to a second query in the same instant exactly as to one);
//! - queries that matched no resource are only counted, in one `QueriesSeen`
//!   that grows while it is the last event, so a flood of ordinary lookups costs
//!   one event, not one per query;
//! - the queue is bounded: beyond its capacity new events are dropped and counted
//!   (applications re-query within a second, since every answer has TTL 1 s).

use std::collections::HashSet;
use std::net::IpAddr;

use super::proxy_ips::Released;

/// One resource serving a queried domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMatch {
    pub resource_id: String,
    pub gateway_id: String,
    /// The domain's proxy IPs of this resource's stack: 4 or 8, IPv4 first.
    pub proxy_ips: Vec<IpAddr>,
}

/// A query for a name served by resources, answered locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceQuery {
    /// Lower case, no trailing dot.
    pub domain: String,
    /// The query type (1 A, 28 AAAA, 64 SVCB, 65 HTTPS, 255 ANY).
    pub query_type: u16,
    /// The resources of the most specific matching pattern, in configuration order.
    pub matches: Vec<ResourceMatch>,
    /// This query allocated the domain's proxy IPs: persist the table.
    pub newly_allocated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StubEvent {
    ResourceQuery(ResourceQuery),
    /// `count` queries that matched no resource (or were not answered for one)
    /// arrived since the previous event: enough to run the "any DNS query" rule.
    QueriesSeen {
        count: u64,
    },
    /// A resource name could not get proxy IPs: the table is full.
    ProxyIpsExhausted {
        domain: String,
        message: String,
    },
    /// Domains that gave their proxy IPs up (idle, or evicted for a new name):
    /// their entries, gates and buffers go too.
    ProxyIpsReleased {
        released: Vec<Released>,
    },
}

/// Default bound of the queue between two drains.
pub const DEFAULT_EVENT_CAPACITY: usize = 65_536;

#[derive(Debug)]
pub struct EventQueue {
    events: Vec<StubEvent>,
    domains: HashSet<String>,
    capacity: usize,
    dropped: u64,
    coalesced: u64,
}

impl EventQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            events: Vec::new(),
            domains: HashSet::new(),
            capacity: capacity.max(1),
            dropped: 0,
            coalesced: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events dropped because the queue was full, since creation.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Resource queries merged into an earlier one of the same batch, since creation.
    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }

    /// Whether a resource query for `domain` is already waiting in this batch.
    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.contains(domain)
    }

    /// Queues a resource query; false when it was coalesced or dropped.
    pub fn push_resource_query(&mut self, q: ResourceQuery) -> bool {
        if self.domains.contains(&q.domain) {
            self.coalesced += 1;
            return false;
        }
        if self.events.len() >= self.capacity {
            self.dropped += 1;
            return false;
        }
        self.domains.insert(q.domain.clone());
        self.events.push(StubEvent::ResourceQuery(q));
        true
    }

    /// Records one resource query that was coalesced without building it.
    pub fn note_coalesced(&mut self) {
        self.coalesced += 1;
    }

    pub fn note_query_seen(&mut self) {
        if let Some(StubEvent::QueriesSeen { count }) = self.events.last_mut() {
            *count += 1;
            return;
        }
        if self.events.len() >= self.capacity {
            self.dropped += 1;
            return;
        }
        self.events.push(StubEvent::QueriesSeen { count: 1 });
    }

    pub fn push_exhausted(&mut self, domain: String, message: String) {
        if self.events.len() >= self.capacity {
            self.dropped += 1;
            return;
        }
        self.events
            .push(StubEvent::ProxyIpsExhausted { domain, message });
    }

    /// Queues a released domain, in order with the queries around it (a query
    /// for it later in the batch is reported again: it has new addresses).
    /// Never dropped: a state machine that missed it would keep the entry.
    /// Bounded all the same: a release goes with an allocation or an idle
    /// sweep, both bounded by the table.
    pub fn push_released(&mut self, released: Released) {
        self.domains.remove(&released.domain);
        if let Some(StubEvent::ProxyIpsReleased { released: list }) = self.events.last_mut() {
            list.push(released);
            return;
        }
        self.events.push(StubEvent::ProxyIpsReleased {
            released: vec![released],
        });
    }

    /// Stops coalescing with the events already queued (used when the resources
    /// change, so a later query reports the new matches).
    pub fn forget_domains(&mut self) {
        self.domains.clear();
    }

    /// Takes the batch, in arrival order.
    pub fn take(&mut self) -> Vec<StubEvent> {
        self.domains.clear();
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rq(domain: &str) -> ResourceQuery {
        ResourceQuery {
            domain: domain.into(),
            query_type: 1,
            matches: vec![],
            newly_allocated: false,
        }
    }

    #[test]
    fn seen_queries_are_counted_into_one_event_until_something_else_arrives() {
        let mut q = EventQueue::new(16);
        q.note_query_seen();
        q.note_query_seen();
        q.push_resource_query(rq("a.example"));
        q.note_query_seen();
        assert_eq!(
            q.take(),
            vec![
                StubEvent::QueriesSeen { count: 2 },
                StubEvent::ResourceQuery(rq("a.example")),
                StubEvent::QueriesSeen { count: 1 },
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn same_domain_is_coalesced_within_a_batch_only() {
        let mut q = EventQueue::new(16);
        q.push_resource_query(rq("a.example"));
        q.push_resource_query(rq("a.example"));
        q.push_resource_query(rq("b.example"));
        assert_eq!(q.len(), 2);
        assert_eq!(q.coalesced(), 1);
        q.take();
        q.push_resource_query(rq("a.example"));
        assert_eq!(q.take(), vec![StubEvent::ResourceQuery(rq("a.example"))]);
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut q = EventQueue::new(2);
        q.push_resource_query(rq("a.example"));
        q.push_resource_query(rq("b.example"));
        q.push_resource_query(rq("c.example"));
        q.note_query_seen();
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 2);
        // A dropped domain is not remembered as pending.
        assert!(!q.has_domain("c.example"));
    }

    #[test]
    fn forgetting_domains_lets_the_same_domain_be_reported_again() {
        let mut q = EventQueue::new(16);
        q.push_resource_query(rq("a.example"));
        q.forget_domains();
        q.push_resource_query(rq("a.example"));
        assert_eq!(q.len(), 2);
    }
}
