//! Time as the core sees it: milliseconds since the Unix epoch, passed in by the caller.
//!
//! MDS timestamps are integer milliseconds since the epoch, so the core uses the same unit.

use serde::{Deserialize, Serialize};

/// Milliseconds since 1970-01-01T00:00:00Z (UTC). The core never reads a clock; callers pass `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimestampMs(pub i64);

impl TimestampMs {
    /// The timestamp `ms` milliseconds later (saturating).
    #[must_use]
    pub fn plus_ms(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (negative when `earlier` is later).
    #[must_use]
    pub fn since(self, earlier: Self) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::fmt::Display for TimestampMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
#[must_use]
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day number since 1970-01-01.
#[must_use]
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl TimestampMs {
    /// RFC 3339 in UTC, to the second: `2026-11-23T16:05:00Z` (GBFS `last_updated`).
    #[must_use]
    pub fn rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let s = secs.rem_euclid(86_400);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            s / 3_600,
            s % 3_600 / 60,
            s % 60
        )
    }

    /// The start of the UTC hour this instant falls in.
    #[must_use]
    pub fn hour_start(self) -> Self {
        Self(self.0.div_euclid(HOUR_MS) * HOUR_MS)
    }

    /// Parses an MDS hour, `YYYY-MM-DDTHH` (UTC), into the instant it starts.
    pub fn parse_hour(raw: &str) -> Result<Self, crate::ParseError> {
        let bad =
            || crate::ParseError::new("hour", "expected YYYY-MM-DDTHH (UTC), e.g. 2026-11-23T15");
        let b = raw.as_bytes();
        if b.len() != 13 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, crate::ParseError> {
            let s = &raw[r];
            if s.bytes().all(|c| c.is_ascii_digit()) {
                s.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let (y, m, d, h) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?);
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days_in_month = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(bad()),
        };
        if d == 0 || d > days_in_month || h > 23 {
            return Err(bad());
        }
        let days = days_from_civil(i64::from(y), m, d);
        Ok(Self(days * 86_400_000 + i64::from(h) * HOUR_MS))
    }

    /// The MDS hour string (`YYYY-MM-DDTHH`, UTC) of the hour this instant falls in.
    #[must_use]
    pub fn mds_hour(self) -> String {
        self.hour_start().rfc3339()[..13].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_hours_round_trip() {
        assert_eq!(TimestampMs(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            TimestampMs(1_795_449_600_000).rfc3339(),
            "2026-11-23T16:00:00Z"
        );
        assert_eq!(
            TimestampMs(951_782_400_000).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        let h = TimestampMs::parse_hour("2026-11-23T16").unwrap();
        assert_eq!(h, TimestampMs(1_795_449_600_000));
        assert_eq!(
            TimestampMs(1_795_449_600_000 + 3_599_999).mds_hour(),
            "2026-11-23T16"
        );
        for day in [-800_000_i64, -1, 0, 59, 11_016, 20_415, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn bad_hours_are_refused() {
        for raw in [
            "",
            "2026-11-23",
            "2026-11-23T24",
            "2026-02-29T00",
            "2026-13-01T00",
            "2026-11-23 16",
            "2026-11-23T1x",
            "+026-11-23T16",
            "2026-11-00T00",
        ] {
            assert!(TimestampMs::parse_hour(raw).is_err(), "{raw}");
        }
        assert!(TimestampMs::parse_hour("2024-02-29T23").is_ok());
    }
}
