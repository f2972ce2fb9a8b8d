//! Battery state of charge.

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// State of charge in whole percent, 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct BatteryPct(u8);

impl BatteryPct {
    /// An empty battery.
    pub const EMPTY: Self = Self(0);
    /// A full battery.
    pub const FULL: Self = Self(100);

    /// Accepts 0..=100.
    pub fn new(pct: i64) -> Result<Self, ParseError> {
        u8::try_from(pct)
            .ok()
            .filter(|p| *p <= 100)
            .map(Self)
            .ok_or_else(|| {
                ParseError::new("battery percentage", format!("{pct} is not in 0..=100"))
            })
    }

    /// Accepts a fraction such as MDS and GBFS report (`0.0..=1.0`), rounding to whole percent.
    pub fn from_fraction(f: f64) -> Result<Self, ParseError> {
        if !f.is_finite() || !(0.0..=1.0).contains(&f) {
            return Err(ParseError::new(
                "battery fraction",
                format!("{f} is not in 0.0..=1.0"),
            ));
        }
        // In range by the check above, so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Self((f * 100.0).round() as u8))
    }

    /// Whole percent.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// As a fraction 0.0..=1.0.
    #[must_use]
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl TryFrom<i64> for BatteryPct {
    type Error = ParseError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<BatteryPct> for u8 {
    fn from(b: BatteryPct) -> Self {
        b.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_enforced() {
        assert_eq!(BatteryPct::new(0).unwrap(), BatteryPct::EMPTY);
        assert_eq!(BatteryPct::new(100).unwrap(), BatteryPct::FULL);
        assert!(BatteryPct::new(101).is_err());
        assert!(BatteryPct::new(-1).is_err());
        assert!(BatteryPct::new(i64::MAX).is_err());
        assert_eq!(BatteryPct::from_fraction(0.456).unwrap().get(), 46);
        assert!(BatteryPct::from_fraction(1.01).is_err());
        assert!(BatteryPct::from_fraction(f64::NAN).is_err());
        assert!(serde_json::from_str::<BatteryPct>("250").is_err());
        assert_eq!(serde_json::from_str::<BatteryPct>("42").unwrap().get(), 42);
    }
}
