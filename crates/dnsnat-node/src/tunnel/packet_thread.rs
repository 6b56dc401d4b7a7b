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

/// The scheduler slice the packet thread asks for (the default is 3 ms on
/// these machines; the kernel accepts 0.1 to 100 ms).
const SLICE_NS: u64 = 20_000_000;

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
                // Best effort: without it (kernels before 6.12 ignore the
                // request) the thread gets the default slice, as before.
                let _ = request_long_slice();
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

/// Asks the kernel's EEVDF scheduler (Linux 6.12+) for a long slice for the
/// calling thread, still at normal priority and with the same fair share.
///
/// Why: a thread's deadline is its slice ahead, and a woken thread preempts
/// the running one only if its deadline is earlier. With a long slice the
/// packet thread is the one that yields: the application it just woke (by
/// delivering a datagram to its socket) runs at once instead of after the
/// tunnel's slice, so the application's socket does not overflow while the
/// tunnel keeps decrypting. Measured on the benchmark's UDP site → client
/// run: 1.07 → 1.5 Gbit/s arriving, and ping through the tunnel with two
/// CPU hogs running was not slower (0.27 → 0.09 ms average).
#[allow(unsafe_code)]
fn request_long_slice() -> std::io::Result<()> {
    /// `struct sched_attr` of sched_setattr(2), version 1 (with util clamps).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: 0,
        sched_priority: 0,
        sched_runtime: SLICE_NS,
        sched_deadline: 0,
        sched_period: 0,
        sched_util_min: 0,
        sched_util_max: 0,
    };
    // SAFETY: sched_setattr reads `size` bytes from a valid, initialised
    // struct that outlives the call; pid 0 is the calling thread; flags 0.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
