//! The napi-rs addon: the edge of dnsnat where devices, sockets and time live.
//!
//! The boundary rule holds here: no per-packet work ever crosses into
//! JavaScript. This module only exposes control-plane functions; the packet
//! loops will run on the tokio runtime installed below.

mod runtime;

pub use runtime::{BuildInfo, RuntimeInfo, build_info, runtime_info};
