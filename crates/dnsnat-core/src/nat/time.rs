//! The NAT's notion of time: a [`Timestamp`] the caller passes in.
//!
//! The core never reads a clock. The event loop picks an origin once (its
//! start `Instant`) and passes `Timestamp::from(now - origin)` with every call;
//! tests, proptests and fuzz targets pass whatever sequence of instants they
//! want, deterministically. A plain `u64` of nanoseconds (good for 584 years)
//! keeps sessions small and comparisons cheap, and unlike `Instant` it can be
//! built from nothing in a test.

use std::ops::{Add, Sub};
use std::time::Duration;

/// Nanoseconds since an origin chosen by the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin.
    pub const ZERO: Timestamp = Timestamp(0);
    /// Later than any real instant; used as "never".
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    pub const fn from_nanos(nanos: u64) -> Timestamp {
        Timestamp(nanos)
    }

    pub const fn from_millis(millis: u64) -> Timestamp {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    pub const fn from_secs(secs: u64) -> Timestamp {
        Timestamp(secs.saturating_mul(1_000_000_000))
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since the origin.
    pub const fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self` plus `nanos`, saturating.
    pub(crate) const fn add_nanos(self, nanos: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(nanos))
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl From<Duration> for Timestamp {
    fn from(d: Duration) -> Timestamp {
        Timestamp(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    /// Saturates at [`Timestamp::MAX`] instead of overflowing.
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, earlier: Timestamp) -> Duration {
        self.saturating_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(2);
        assert_eq!(t + Duration::from_millis(500), Timestamp::from_millis(2500));
        assert_eq!(Timestamp::from_secs(1) - t, Duration::ZERO);
        assert_eq!(t - Timestamp::from_secs(1), Duration::from_secs(1));
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(
            Timestamp::from(Duration::from_millis(7)).as_nanos(),
            7_000_000
        );
    }
}
