//! The packet path's own thread: both loops (device → peers, peers → device)
//! on one single-threaded runtime whose reactor owns the device and the
//! socket.
//!
//! Why not the addon's multi-threaded runtime: there the two loops were
//! picked up by whichever worker was free, so every wakeup could hop threads,
//! and the idle worker woke to look for work thousands of times a second.
//! On a two-core machine those threads competed with the applications whose
//! packets they carry. One thread measured better in every throughput case
//! (`docs/performance.md`; the decision is in `docs/decisions.md`). Everything
//! else (timers, the DNS stub, the resolver, events) stays on the addon
//! runtime, so a flood of DNS queries and a bulk transfer do not queue behind
//! each other.
//!
//! What must stay true: the device and the socket are registered with this
//! runtime's reactor (created inside `enter`), so their readiness is seen by
//! the thread that waits on it; other threads may still send through them
//! without waiting (`try_send`), never by awaiting readiness.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, EnterGuard, Runtime};
use tokio::sync::oneshot;

use super::io::{Device, Socket};
use super::loops::{self, Shared};

/// Name of the thread in `top -H` and `perf` (at most 15 bytes on Linux).
const THREAD_NAME: &str = "dnsnat-packets";

/// The runtime before its thread starts: the device and socket are created
/// inside `enter()` so that they belong to it.
pub struct PacketRuntime(Runtime);

impl PacketRuntime {
    pub fn new() -> io::Result<PacketRuntime> {
        Ok(PacketRuntime(
            Builder::new_current_thread().enable_all().build()?,
        ))
    }

    pub fn enter(&self) -> EnterGuard<'_> {
        self.0.enter()
    }
}

/// The running thread; stopping it (or dropping this) ends both loops and
/// waits for the thread, so the device is closed once nothing else holds it.
pub struct PacketThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PacketThread {
    pub fn start<D: Device + 'static, S: Socket + 'static>(
        runtime: PacketRuntime,
        shared: Arc<Shared<D, S>>,
    ) -> io::Result<PacketThread> {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let PacketRuntime(rt) = runtime;
                rt.block_on(async move {
                    let out = tokio::spawn(loops::tun_to_udp(shared.clone()));
                    let back = tokio::spawn(loops::udp_to_tun(shared));
                    // Either a stop or the Tunnel going away (sender dropped).
                    let _ = stopped.await;
                    out.abort();
                    back.abort();
                });
                // Dropping the runtime here drops the loops' futures and with
                // them their references to the device and socket.
            })?;
        Ok(PacketThread {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Ends within one turn of the runtime: both loops yield at least
            // every coop budget, and nothing in them blocks.
            let _ = thread.join();
        }
    }
}

impl Drop for PacketThread {
    fn drop(&mut self) {
        self.stop();
    }
}
