//! Telemetry ingest shared by every source (HTTP batch now, MQTT next): the JSON wire format of
//! one report (see `docs/vehicle-protocol.md`), its validation into a typed [`Telemetry`], and
//! the metrics every accepted or rejected report is counted in.

use mobility_core::{BatteryPct, LatLon, TimestampMs, VehicleId};
use mobility_fleet::{Reject, Telemetry, Verdict, telemetry::ERROR_CODES_MAX};
use serde::Deserialize;

/// Most reports in one HTTP batch.
pub const BATCH_REPORTS_MAX: usize = 10_000;
/// Largest HTTP batch body, bytes.
pub const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Highest plausible ground speed, m/s (360 km/h); above it the report is refused.
pub const SPEED_M_S_MAX: f32 = 100.0;

/// One report as it arrives. Unknown fields are ignored so newer firmware can add fields.
#[derive(Debug, Deserialize)]
pub struct RawReport {
    /// Vehicle UUID.
    pub vehicle_id: String,
    /// Measurement time, ms since the Unix epoch (vehicle clock).
    pub ts: i64,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// State of charge, whole percent.
    pub battery_pct: Option<i64>,
    /// Ground speed, m/s.
    pub speed_mps: Option<f32>,
    /// Heading, degrees clockwise from north.
    pub heading_deg: Option<f32>,
    /// Odometer, metres.
    pub odometer_m: Option<u32>,
    /// Lock engaged.
    pub locked: Option<bool>,
    /// Active fault codes.
    #[serde(default)]
    pub errors: Vec<u16>,
}

/// Why a report is refused before it reaches the fleet state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not a report object at all.
    #[error("malformed report: {0}")]
    Malformed(String),
    /// Position out of range or not a number.
    #[error("{0}")]
    Position(String),
    /// Another field out of range.
    #[error("{0}")]
    Field(String),
}

impl Invalid {
    /// Stable metric label.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Position(_) => "invalid_position",
            Self::Field(_) => "invalid_field",
        }
    }
}

impl RawReport {
    /// Validates every field into a typed report.
    pub fn validate(self) -> Result<Telemetry, Invalid> {
        let vehicle_id =
            VehicleId::parse(&self.vehicle_id).map_err(|e| Invalid::Field(e.to_string()))?;
        let position =
            LatLon::new(self.lat, self.lon).map_err(|e| Invalid::Position(e.to_string()))?;
        let battery = self
            .battery_pct
            .map(BatteryPct::new)
            .transpose()
            .map_err(|e| Invalid::Field(e.to_string()))?;
        if let Some(s) = self.speed_mps
            && !(s.is_finite() && (0.0..=SPEED_M_S_MAX).contains(&s))
        {
            return Err(Invalid::Field(format!(
                "speed_mps {s} is not in 0..={SPEED_M_S_MAX}"
            )));
        }
        if let Some(h) = self.heading_deg
            && !(h.is_finite() && (0.0..360.0).contains(&h))
        {
            return Err(Invalid::Field(format!("heading_deg {h} is not in 0..360")));
        }
        if self.errors.len() > ERROR_CODES_MAX {
            return Err(Invalid::Field(format!(
                "at most {ERROR_CODES_MAX} error codes per report, not {}",
                self.errors.len()
            )));
        }
        if self.ts <= 0 {
            return Err(Invalid::Field(format!(
                "ts {} is not a time after 1970",
                self.ts
            )));
        }
        Ok(Telemetry {
            vehicle_id,
            at: TimestampMs(self.ts),
            position,
            battery,
            speed_m_s: self.speed_mps,
            heading_deg: self.heading_deg,
            odometer_m: self.odometer_m,
            locked: self.locked,
            error_codes: self.errors,
        })
    }
}

/// Counts a report refused at validation.
pub fn count_invalid(source: &'static str, e: &Invalid) {
    metrics::counter!("telemetry_rejected_total", "source" => source, "reason" => e.label())
        .increment(1);
}

/// Counts what the fleet state did with a report.
pub fn count_outcome(source: &'static str, outcome: &Result<Verdict, Reject>) {
    match outcome {
        Ok(Verdict::Applied) => {
            metrics::counter!("telemetry_applied_total", "source" => source).increment(1);
        }
        Ok(Verdict::Duplicate) => {
            metrics::counter!("telemetry_duplicates_total", "source" => source).increment(1);
        }
        Err(r) => {
            metrics::counter!("telemetry_rejected_total", "source" => source, "reason" => r.label())
                .increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawReport {
        serde_json::from_str(json).unwrap()
    }

    const ID: &str = "0190f1c2-7a3b-7cde-8f01-23456789abcd";

    #[test]
    fn a_full_report_validates() {
        let t = raw(&format!(
            r#"{{"vehicle_id":"{ID}","ts":1800000000000,"lat":41.39,"lon":2.17,"battery_pct":81,
               "speed_mps":4.5,"heading_deg":270,"odometer_m":1200,"locked":false,"errors":[3],"fw":"2.1"}}"#
        ))
        .validate()
        .unwrap();
        assert_eq!(t.battery.map(BatteryPct::get), Some(81));
        assert_eq!(t.error_codes, vec![3]);
    }

    #[test]
    fn each_bad_field_is_named() {
        let base =
            |extra: &str| format!(r#"{{"vehicle_id":"{ID}","ts":1,"lat":41.0,"lon":2.0{extra}}}"#);
        let cases = [
            (base(r#","battery_pct":101"#), "invalid_field"),
            (base(r#","speed_mps":-1"#), "invalid_field"),
            (base(r#","heading_deg":360"#), "invalid_field"),
            (
                base(r#","errors":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]"#),
                "invalid_field",
            ),
            (
                format!(r#"{{"vehicle_id":"{ID}","ts":1,"lat":91.0,"lon":2.0}}"#),
                "invalid_position",
            ),
            (
                format!(r#"{{"vehicle_id":"{ID}","ts":1,"lat":41.0,"lon":-180.5}}"#),
                "invalid_position",
            ),
            (
                r#"{"vehicle_id":"scooter-7","ts":1,"lat":41.0,"lon":2.0}"#.to_owned(),
                "invalid_field",
            ),
            (
                format!(r#"{{"vehicle_id":"{ID}","ts":0,"lat":41.0,"lon":2.0}}"#),
                "invalid_field",
            ),
        ];
        for (json, label) in cases {
            let err = raw(&json).validate().unwrap_err();
            assert_eq!(err.label(), label, "{json}: {err}");
        }
    }

    #[test]
    fn nan_cannot_even_be_written_in_json() {
        assert!(
            serde_json::from_str::<RawReport>(&format!(
                r#"{{"vehicle_id":"{ID}","ts":1,"lat":NaN,"lon":2.0}}"#
            ))
            .is_err()
        );
    }
}
