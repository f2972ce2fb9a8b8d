//! Telemetry reports and the rules that decide what happens to each.

use mobility_core::TimestampMs;

/// How far in the future (by our clock) a report may claim to be before it is rejected.
pub const FUTURE_SKEW_MS_MAX: i64 = 30_000;

pub use mobility_core::telemetry::{ERROR_CODES_MAX, Telemetry};

/// Why a report was not applied. Each reason is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The vehicle is not registered.
    #[error("unknown vehicle")]
    UnknownVehicle,
    /// The report claims a time too far ahead of our clock.
    #[error("timestamp more than {} s in the future", FUTURE_SKEW_MS_MAX / 1000)]
    FromTheFuture,
    /// The vehicle already reported something newer; this one must not overwrite it.
    #[error("older than the vehicle's latest accepted report")]
    Stale,
}

impl Reject {
    /// Stable metric label.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::UnknownVehicle => "unknown_vehicle",
            Self::FromTheFuture => "future_timestamp",
            Self::Stale => "stale",
        }
    }
}

/// What applying a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The vehicle's state now reflects the report.
    Applied,
    /// Same timestamp as the latest accepted report: a redelivery, nothing changed.
    Duplicate,
}

/// The pure decision for a report against the vehicle's latest accepted time (`None` when it has
/// never reported). Duplicates are recognised by timestamp: a device sends at most one report per
/// millisecond (see docs/vehicle-protocol.md).
pub fn judge(
    latest: Option<TimestampMs>,
    report_at: TimestampMs,
    now: TimestampMs,
) -> Result<Verdict, Reject> {
    if report_at.since(now) > FUTURE_SKEW_MS_MAX {
        return Err(Reject::FromTheFuture);
    }
    match latest {
        Some(t) if report_at == t => Ok(Verdict::Duplicate),
        Some(t) if report_at < t => Err(Reject::Stale),
        _ => Ok(Verdict::Applied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let now = TimestampMs(1_000_000);
        assert_eq!(judge(None, now, now), Ok(Verdict::Applied));
        assert_eq!(
            judge(Some(TimestampMs(10)), TimestampMs(11), now),
            Ok(Verdict::Applied)
        );
        assert_eq!(
            judge(Some(TimestampMs(10)), TimestampMs(10), now),
            Ok(Verdict::Duplicate)
        );
        assert_eq!(
            judge(Some(TimestampMs(10)), TimestampMs(9), now),
            Err(Reject::Stale)
        );
        assert_eq!(judge(None, now.plus_ms(30_000), now), Ok(Verdict::Applied));
        assert_eq!(
            judge(None, now.plus_ms(30_001), now),
            Err(Reject::FromTheFuture)
        );
    }
}
