//! The wall clock: the one place the platform reads the time of day. Everything below the
//! server (services, the live fleet, the API) is handed a `mobility_core::Clock` and asks it.

use mobility_core::{Clock, TimestampMs};

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::cast_possible_truncation)]
    fn now(&self) -> TimestampMs {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        TimestampMs(ms)
    }
}

/// The wall clock now: for the shell (start-up, the command line) and tests.
#[must_use]
pub fn now() -> TimestampMs {
    SystemClock.now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_this_century() {
        // 2020-01-01 and 2100-01-01.
        let t = now().0;
        assert!(t > 1_577_836_800_000 && t < 4_102_444_800_000, "{t}");
    }
}
