//! The client's stub DNS resolver (docs/architecture.md#one-dns-query), as pure logic.
//!
//! The runtime owns the sockets on the sentinel addresses; for every query it
//! calls [`Stub::handle_query`] with the message bytes and gets back an answer to
//! send, "forward upstream unchanged", or "drop". Resource matches and the "a
//! query was seen" signal accumulate in a queue the runtime drains in batches
//! ([`Stub::take_events`]) and hands to the TypeScript state machine.
//!
//! - [`resources`]: resources (id, pattern, IP stack, gateway) and the lookup of
//!   the most specific one for a name;
//! - [`proxy_ips`]: the sequential, persisted proxy IP allocator;
//! - [`message`]: header reading, FORMERR, answer encoding, UDP size limits and
//!   truncation, reverse names;
//! - [`stub`]: the decision per query;
//! - [`events`]: what the TypeScript layer learns, batched;
//! - [`tcp_framing`]: DNS over TCP's 2-byte length prefix.

pub mod events;
pub mod message;
pub mod proxy_ip_json;
pub mod proxy_ips;
pub mod recency;
pub mod resources;
pub mod stub;
pub mod tcp_framing;

pub use events::{ResourceMatch, ResourceQuery, StubEvent};
pub use proxy_ips::{
    AllocatorStats, ProxyIpAllocator, ProxyIpEntry, ProxyIpTable, ProxyIps, ProxyIpsExhausted,
    Released, SeedRejection,
};
pub use resources::{IpStack, Resource, ResourceError, ResourceTable};
pub use stub::{QueryDropReason, Stub, StubAction, StubOptions, StubStats, Transport};
pub use tcp_framing::{FrameTooLong, TcpFrameDecoder, encode_frame};

/// TTL of every locally synthesised record: applications re-query at once, so
/// every use of a name reaches the stub and refreshes the gateway's NAT.
pub const ANSWER_TTL: u32 = 1;
