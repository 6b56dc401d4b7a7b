//! How many control packets one peer may hand to JavaScript.
//!
//! Every control packet becomes work on the Node thread (parse, validate,
//! maybe a resolution and a reply), so a peer holding a valid key could keep
//! that thread busy for everyone. Each peer gets a token bucket; a packet
//! over budget is dropped here, on the packet thread, before it costs the
//! event queue or JavaScript anything. Drops are counted exactly and
//! reported to JavaScript at most once a second per peer, so the log line
//! about them is bounded too.

use std::time::Duration;

use dnsnat_core::nat::{RateLimiter, Timestamp};

/// The shortest time between two reports of one peer's drops.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAdmit {
    Pass,
    /// Over budget; `report` is the number of drops to tell JavaScript about
    /// now (this one included), when a report is due.
    Drop {
        report: Option<u64>,
    },
}

#[derive(Debug)]
pub struct ControlBudget {
    limiter: RateLimiter,
    unreported: u64,
    last_report: Option<Timestamp>,
}

impl ControlBudget {
    pub fn new(per_second: u32, burst: u32) -> ControlBudget {
        ControlBudget {
            limiter: RateLimiter::new(per_second, burst.max(1)),
            unreported: 0,
            last_report: None,
        }
    }

    pub fn admit(&mut self, now: Timestamp) -> ControlAdmit {
        if self.limiter.allow(now) {
            return ControlAdmit::Pass;
        }
        self.unreported += 1;
        let due = self
            .last_report
            .is_none_or(|at| now >= at + REPORT_INTERVAL);
        if !due {
            return ControlAdmit::Drop { report: None };
        }
        self.last_report = Some(now);
        ControlAdmit::Drop {
            report: Some(std::mem::take(&mut self.unreported)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_drops_are_reported_once_a_second() {
        let mut b = ControlBudget::new(10, 5);
        let t0 = Timestamp::from_secs(1);
        for _ in 0..5 {
            assert_eq!(b.admit(t0), ControlAdmit::Pass);
        }
        assert_eq!(b.admit(t0), ControlAdmit::Drop { report: Some(1) });
        for _ in 0..99 {
            assert_eq!(b.admit(t0), ControlAdmit::Drop { report: None });
        }
        // 100 ms later one token is back; the flood goes on.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.admit(t1), ControlAdmit::Pass);
        assert_eq!(b.admit(t1), ControlAdmit::Drop { report: None });
        // A second after the first report, the budget has refilled to its
        // burst, and the next drop reports every drop since (100) and itself.
        let t2 = t0 + Duration::from_secs(1);
        for _ in 0..5 {
            assert_eq!(b.admit(t2), ControlAdmit::Pass);
        }
        assert_eq!(b.admit(t2), ControlAdmit::Drop { report: Some(101) });
    }
}
