//! A token bucket (GCRA form): generated ICMP errors per client here, and
//! control packets per peer in the addon.
//!
//! RFC 1812 §4.3.2.8 and RFC 4443 §2.4 f require rate limiting ICMP errors:
//! a client hammering an unreachable proxy IP must not turn the gateway into
//! an amplifier of tunnel traffic. The generic cell rate algorithm keeps one
//! timestamp instead of a token count and a refill time, and needs no
//! division on the hot path.

use std::time::Duration;

use super::time::Timestamp;

#[derive(Debug, Clone, Copy)]
pub struct RateLimiter {
    /// Time one message "costs".
    interval: Duration,
    /// How far ahead of `now` the theoretical arrival time may run: the burst.
    tolerance: Duration,
    /// Theoretical arrival time of the next conforming message.
    tat: Timestamp,
    disabled: bool,
}

impl RateLimiter {
    /// `per_second` messages a second on average, `burst` at once.
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        RateLimiter {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            tat: Timestamp::ZERO,
            disabled: burst == 0,
        }
    }

    /// Whether one more message may go out at `now`; consumes it if so.
    pub fn allow(&mut self, now: Timestamp) -> bool {
        if self.disabled {
            return false;
        }
        let tat = self.tat.max(now);
        if tat > now + self.tolerance {
            return false;
        }
        self.tat = tat + self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let mut r = RateLimiter::new(10, 3);
        let t0 = Timestamp::from_secs(100);
        let allowed = (0..10).filter(|_| r.allow(t0)).count();
        assert_eq!(allowed, 3);
        // One message per 100 ms after that.
        assert!(!r.allow(t0 + Duration::from_millis(50)));
        assert!(r.allow(t0 + Duration::from_millis(100)));
        assert!(!r.allow(t0 + Duration::from_millis(150)));
        // A long quiet period refills the burst, not more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| r.allow(later)).count(), 3);
    }

    #[test]
    fn zero_burst_disables() {
        let mut r = RateLimiter::new(10, 0);
        assert!(!r.allow(Timestamp::from_secs(1)));
    }
}
