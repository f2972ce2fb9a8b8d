//! The `Clock` seam: what time it is, passed in. Services, the live fleet and the API ask a
//! `Clock` and never read the wall clock themselves, so tests and the simulator can hold time
//! still or move it by hand. The wall clock itself is read in one place, the server's
//! `SystemClock`; this crate only defines the seam and a hand-moved clock.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::TimestampMs;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now(&self) -> TimestampMs;
}

/// A clock that moves only when told to: for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `at`.
    #[must_use]
    pub fn new(at: TimestampMs) -> Self {
        Self(AtomicI64::new(at.0))
    }

    /// Sets the time.
    pub fn set(&self, at: TimestampMs) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    /// Moves the time on by `ms` milliseconds.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> TimestampMs {
        TimestampMs(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(TimestampMs(1_000));
        assert_eq!(c.now(), TimestampMs(1_000));
        c.advance(500);
        assert_eq!(c.now(), TimestampMs(1_500));
        c.set(TimestampMs(7));
        assert_eq!(c.now(), TimestampMs(7));
    }
}
