//! The packet path's own threads, one per direction, each with a
//! single-threaded runtime: `dnsnat-outbound` reads the device and sends to
//! peers; `dnsnat-inbound` receives from peers and writes the device.
//!
//! Why not the addon's multi-threaded runtime: there the two loops were
//! picked up by whichever worker was free, so every wakeup could hop threads,
//! and the idle worker woke to look for work thousands of times a second.
//! On a two-core machine those threads competed with the applications whose
//! packets they carry. Threads of their own measured better in every
//! throughput case (`docs/performance.md`; the decision is in
//! `docs/decisions.md`). Everything else (timers, the DNS stub, the resolver,
//! events) stays on the addon runtime, so a flood of DNS queries and a bulk
//! transfer do not queue behind each other.
//!
//! Why one thread per direction rather than one for both: the two directions
//! want different things from the scheduler. The inbound thread hands
//! datagrams to applications and should let them run as soon as it has woken
//! them (a long slice, below); the outbound thread reads what applications
//! send and should not defer to a sending application that is itself
//! busy, or the device queue overflows instead.
//!
//! What must stay true: each thread waits only on the descriptor it reads,
//! registered with its own runtime's reactor (the device is created inside
//! `enter_outbound`, the socket inside `enter_inbound`). Sends to the socket
//! never wait (`try_send`, from any thread); the inbound thread's writes to
//! the device wait, rarely, on the outbound runtime's reactor, which runs as
//! long as the outbound thread does.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, EnterGuard, Runtime};
use tokio::sync::oneshot;

use super::io::{Device, Socket};
use super::loops::{self, Shared};

/// Thread names in `top -H` and `perf` (at most 15 bytes on Linux).
const OUTBOUND: &str = "dnsnat-outbound";
const INBOUND: &str = "dnsnat-inbound";

/// The scheduler slice the inbound thread asks for (the default is 3 ms on
/// these machines; the kernel accepts 0.1 to 100 ms).
const INBOUND_SLICE_NS: u64 = 20_000_000;

/// The two runtimes before their threads start.
pub struct PacketRuntimes {
    outbound: Unstarted,
    inbound: Unstarted,
}

impl PacketRuntimes {
    pub fn new() -> io::Result<PacketRuntimes> {
        let runtime = || -> io::Result<Unstarted> {
            Ok(Unstarted(Some(
                Builder::new_current_thread().enable_all().build()?,
            )))
        };
        Ok(PacketRuntimes {
            outbound: runtime()?,
            inbound: runtime()?,
        })
    }

    /// Where the device must be created: the outbound thread reads it.
    pub fn enter_outbound(&self) -> EnterGuard<'_> {
        self.outbound.runtime().enter()
    }

    /// Where the socket must be created: the inbound thread reads it.
    pub fn enter_inbound(&self) -> EnterGuard<'_> {
        self.inbound.runtime().enter()
    }
}

/// A runtime whose thread has not taken it yet.
///
/// What must stay true: dropped before then, it shuts down with
/// `shutdown_background`, never with a plain drop. `Tunnel.create` holds the
/// runtimes in the addon runtime's async context, and when it fails after
/// making them (the port is taken, the device name is busy) a plain drop
/// panics there ("Cannot drop a runtime in a context where blocking is not
/// allowed") and the caller gets that message instead of the real error.
/// Nothing ran on it, so there is nothing to wait for.
struct Unstarted(Option<Runtime>);

impl Unstarted {
    fn runtime(&self) -> &Runtime {
        self.0
            .as_ref()
            .expect("an Unstarted holds its runtime until its thread takes it")
    }

    /// The runtime, for the thread that runs it (and drops it normally).
    fn take(mut self) -> Runtime {
        self.0
            .take()
            .expect("an Unstarted holds its runtime until its thread takes it")
    }
}

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The running threads; stopping them (or dropping this) ends both loops and
/// waits for the threads, so the device is closed once nothing else holds it.
pub struct PacketThreads {
    // Declared (and so dropped) first: its writes may wait on the outbound
    // runtime's reactor.
    inbound: PacketThread,
    outbound: PacketThread,
}

impl PacketThreads {
    pub fn start<D: Device + 'static, S: Socket + 'static>(
        runtimes: PacketRuntimes,
        shared: Arc<Shared<D, S>>,
    ) -> io::Result<PacketThreads> {
        let PacketRuntimes { outbound, inbound } = runtimes;
        let outbound =
            PacketThread::spawn(OUTBOUND, outbound, None, loops::tun_to_udp(shared.clone()))?;
        // If this fails, dropping `outbound` stops its thread.
        let inbound = PacketThread::spawn(
            INBOUND,
            inbound,
            Some(INBOUND_SLICE_NS),
            loops::udp_to_tun(shared),
        )?;
        Ok(PacketThreads { inbound, outbound })
    }

    pub fn stop(&mut self) {
        self.inbound.stop();
        self.outbound.stop();
    }
}

/// One loop on one thread.
struct PacketThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PacketThread {
    fn spawn(
        name: &str,
        runtime: Unstarted,
        slice_ns: Option<u64>,
        packet_loop: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<PacketThread> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, has_started) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if let Some(slice) = slice_ns {
                    // Best effort: without it (kernels before 6.12 ignore
                    // the request) the thread keeps the default slice.
                    let _ = request_slice(slice);
                }
                let _ = started.send(());
                let runtime = runtime.take();
                runtime.block_on(async move {
                    let task = tokio::spawn(packet_loop);
                    // Either a stop or the Tunnel going away (sender dropped).
                    let _ = stopped.await;
                    task.abort();
                });
                // Dropping the runtime here drops the loop's future and with
                // it its references to the device and socket.
            })?;
        let thread = PacketThread {
            stop: Some(stop),
            thread: Some(thread),
        };
        // Returns once the thread has its name and its slice, which it sets
        // itself as it starts (microseconds): so that a created Tunnel's
        // threads are what they will be, for `ps`, for the scheduler and for
        // the test that checks them, which otherwise raced the new thread.
        has_started.recv().map_err(|_| {
            io::Error::other(format!("the {name} packet thread ended before it started"))
        })?;
        Ok(thread)
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Ends within one turn of the runtime: the loop yields at least
            // every coop budget, and nothing in it blocks.
            let _ = thread.join();
        }
    }
}

impl Drop for PacketThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks the kernel's EEVDF scheduler (Linux 6.12+) for a slice of `slice_ns`
/// for the calling thread, still at normal priority and with the same fair
/// share.
///
/// Why: a thread's deadline is its slice ahead, and a woken thread preempts
/// the running one only if its deadline is earlier. With a long slice the
/// inbound thread is the one that yields: the application it just woke (by
/// delivering a datagram to its socket) runs at once instead of after the
/// tunnel's slice, so the application's socket does not overflow while the
/// tunnel keeps decrypting. Measured on the benchmark's UDP site → client
/// run: 1.07 → 1.5 Gbit/s arriving, and ping through the tunnel with two
/// CPU hogs running was not slower (0.27 → 0.09 ms average).
#[allow(unsafe_code)]
fn request_slice(slice_ns: u64) -> io::Result<()> {
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
        sched_runtime: slice_ns,
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
        Err(io::Error::last_os_error())
    }
}
