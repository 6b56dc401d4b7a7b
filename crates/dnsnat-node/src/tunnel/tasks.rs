//! A tunnel's tasks on the addon runtime (timers, event delivery, the client's
//! stub), and a `stop` that returns only once the runtime has dropped them.
//!
//! Why wait: those tasks hold the tunnel's state, and with it the TUN device,
//! the UDP socket and the stub's sockets. `JoinHandle::abort` only asks; the
//! runtime drops an aborted task on one of its workers a moment later. A
//! script that stops a tunnel and creates one of the same name at once (a
//! restart) met a device still held ("Device or resource busy") or a port
//! still bound. `Tunnel.stop` is synchronous and called from JavaScript's
//! thread, outside the runtime, so it can block on a plain channel.
//!
//! How: every task owns a clone of one `Sender`; a task's future, and the
//! clone with it, is dropped when the task ends or is aborted, and the
//! `Receiver` sees the channel close once the last one is gone.

use std::future::Future;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use tokio::task::JoinHandle;

pub struct Tasks {
    handles: Vec<JoinHandle<()>>,
    alive: Option<Sender<()>>,
    gone: Receiver<()>,
}

impl Tasks {
    pub fn new() -> Tasks {
        let (alive, gone) = mpsc::channel();
        Tasks {
            handles: Vec::new(),
            alive: Some(alive),
            gone,
        }
    }

    /// Spawns `task` on the current runtime. After `stop`, nothing is spawned.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        let Some(alive) = self.alive.clone() else {
            return;
        };
        self.handles.push(tokio::spawn(async move {
            let _alive = alive;
            task.await;
        }));
    }

    /// Aborts every task and waits until all are dropped, at most `limit`
    /// (a runtime too busy to drop them must not hang JavaScript's thread).
    /// True when they are all gone. Idempotent.
    pub fn stop(&mut self, limit: Duration) -> bool {
        for handle in self.handles.drain(..) {
            handle.abort();
        }
        self.alive = None;
        matches!(
            self.gone.recv_timeout(limit),
            Err(RecvTimeoutError::Disconnected)
        )
    }
}

/// A `Tasks` dropped without `stop` (a `Tunnel.create` that failed after
/// spawning them, a Tunnel collected without `stop()`) aborts its tasks
/// without waiting: a dropped `JoinHandle` only detaches, and the timers task
/// would otherwise run on, holding the device, for the life of the process.
/// No wait here: the drop may run inside the runtime (`create` is async).
impl Drop for Tasks {
    fn drop(&mut self) {
        for handle in self.handles.drain(..) {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn stop_returns_once_every_task_has_dropped_what_it_holds() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let held = Arc::new(());
        let mut tasks = Tasks::new();
        {
            let _inside = runtime.enter();
            for _ in 0..8 {
                let mine = held.clone();
                tasks.spawn(async move {
                    // Never ends on its own: only the abort ends it.
                    std::future::pending::<()>().await;
                    drop(mine);
                });
            }
            tasks.spawn(async {});
        }
        assert!(tasks.stop(Duration::from_secs(5)));
        // What the tasks held is released when stop returns, not later.
        assert_eq!(Arc::strong_count(&held), 1);
        assert!(tasks.stop(Duration::from_secs(5)), "a second stop");
        let _inside = runtime.enter();
        tasks.spawn(async {});
        assert!(tasks.handles.is_empty(), "nothing is spawned after stop");
    }

    #[test]
    fn a_dropped_set_aborts_its_tasks() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let held = Arc::new(());
        let (dropped, all_dropped) = mpsc::channel::<()>();
        {
            let _inside = runtime.enter();
            let mut tasks = Tasks::new();
            let mine = held.clone();
            tasks.spawn(async move {
                let _dropped = dropped;
                std::future::pending::<()>().await;
                drop(mine);
            });
        }
        // The task's future is dropped by the runtime once aborted; without
        // the abort it would pend for ever and this would time out.
        assert_eq!(
            all_dropped.recv_timeout(Duration::from_secs(5)),
            Err(RecvTimeoutError::Disconnected)
        );
        // The channel's sender and the Arc drop one after the other on the
        // runtime's thread: give the second a moment (this was a flaky read).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&held) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(Arc::strong_count(&held), 1);
    }
}
