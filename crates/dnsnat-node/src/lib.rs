//! The napi-rs addon: the edge of dnsnat where devices, sockets and time live.
//!
//! The boundary rule holds here: no per-packet work ever crosses into
//! JavaScript. JavaScript configures, sends and receives control messages, and
//! reads counters; every packet stays on the tokio runtime installed below.

mod address_plan;
mod client;
mod counters;
mod events;
mod keys;
mod pattern;
mod resolver;
mod runtime;
mod tunnel;
mod udp;

pub use address_plan::{AddressPlan, address_plan};
pub use keys::{KeyPair, generate_keypair, public_key_of};
pub use pattern::{NativePattern, is_hostname_js};
pub use resolver::{Resolution, Resolver, ResolverOptions, ResolverStats};
pub use runtime::{BuildInfo, RuntimeInfo, build_info, runtime_info};
pub use tunnel::{PeerOptions, PeerStatus, Tunnel, TunnelEvent, TunnelOptions};
