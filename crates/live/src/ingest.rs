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
    /// Vehicle UUID. Required over HTTP; over MQTT the topic names the vehicle and this, if
    /// present, must match it.
    pub vehicle_id: Option<String>,
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
    /// Validates every field into a typed report. `topic_vehicle` is the vehicle an MQTT topic
    /// names (the payload may omit `vehicle_id` then, but must not contradict it).
    pub fn validate(self, topic_vehicle: Option<VehicleId>) -> Result<Telemetry, Invalid> {
        let named = self
            .vehicle_id
            .as_deref()
            .map(VehicleId::parse)
            .transpose()
            .map_err(|e| Invalid::Field(e.to_string()))?;
        let vehicle_id = match (named, topic_vehicle) {
            (Some(a), Some(b)) if a != b => {
                return Err(Invalid::Field(format!(
                    "vehicle_id {a} does not match the topic's {b}"
                )));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => return Err(Invalid::Malformed("missing field `vehicle_id`".into())),
        };
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

/// Size of one compact binary telemetry record, bytes.
pub const BINARY_RECORD_BYTES: usize = 32;
/// Most records in one binary message.
pub const BINARY_RECORDS_MAX: usize = 256;
/// Most reports in one JSON MQTT message.
pub const MQTT_JSON_REPORTS_MAX: usize = 256;

const FLAG_BATTERY: u8 = 1;
const FLAG_LOCK_KNOWN: u8 = 2;
const FLAG_LOCKED: u8 = 4;
const FLAG_SPEED: u8 = 8;
const FLAG_HEADING: u8 = 16;
const FLAG_ODOMETER: u8 = 32;

/// Decodes compact binary telemetry: a sequence of 32-byte little-endian records (layout in
/// docs/vehicle-protocol.md). Each record is judged on its own.
#[must_use]
pub fn decode_binary(vehicle: VehicleId, payload: &[u8]) -> Vec<Result<Telemetry, Invalid>> {
    if payload.is_empty() || !payload.len().is_multiple_of(BINARY_RECORD_BYTES) {
        return vec![Err(Invalid::Malformed(format!(
            "binary telemetry must be a multiple of {BINARY_RECORD_BYTES} bytes, not {}",
            payload.len()
        )))];
    }
    if payload.len() / BINARY_RECORD_BYTES > BINARY_RECORDS_MAX {
        return vec![Err(Invalid::Malformed(format!(
            "at most {BINARY_RECORDS_MAX} records per message"
        )))];
    }
    payload
        .chunks_exact(BINARY_RECORD_BYTES)
        .map(|r| decode_record(vehicle, r))
        .collect()
}

fn decode_record(vehicle: VehicleId, r: &[u8]) -> Result<Telemetry, Invalid> {
    let u16_at = |i: usize| u16::from_le_bytes([r[i], r[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
    let i32_at = |i: usize| i32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
    if r[0] != 1 {
        return Err(Invalid::Malformed(format!(
            "unknown binary record version {}",
            r[0]
        )));
    }
    let flags = r[1];
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&r[4..12]);
    let raw = RawReport {
        vehicle_id: None,
        ts: i64::from_le_bytes(ts),
        lat: f64::from(i32_at(12)) / 1e7,
        lon: f64::from(i32_at(16)) / 1e7,
        battery_pct: (flags & FLAG_BATTERY != 0).then_some(i64::from(r[2])),
        speed_mps: (flags & FLAG_SPEED != 0).then(|| f32::from(u16_at(20)) / 100.0),
        heading_deg: (flags & FLAG_HEADING != 0).then(|| f32::from(u16_at(22)) / 100.0),
        odometer_m: (flags & FLAG_ODOMETER != 0).then(|| u32_at(24)),
        locked: (flags & FLAG_LOCK_KNOWN != 0).then_some(flags & FLAG_LOCKED != 0),
        errors: Vec::new(),
    };
    raw.validate(Some(vehicle))
}

/// Encodes reports as compact binary records (for simulated vehicles and load tools).
#[must_use]
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn encode_binary(reports: &[Telemetry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(reports.len() * BINARY_RECORD_BYTES);
    for t in reports {
        let mut flags = 0u8;
        let mut rec = [0u8; BINARY_RECORD_BYTES];
        rec[0] = 1;
        if let Some(b) = t.battery {
            flags |= FLAG_BATTERY;
            rec[2] = b.get();
        }
        if let Some(l) = t.locked {
            flags |= FLAG_LOCK_KNOWN | if l { FLAG_LOCKED } else { 0 };
        }
        rec[4..12].copy_from_slice(&t.at.0.to_le_bytes());
        rec[12..16].copy_from_slice(&((t.position.lat() * 1e7).round() as i32).to_le_bytes());
        rec[16..20].copy_from_slice(&((t.position.lon() * 1e7).round() as i32).to_le_bytes());
        if let Some(s) = t.speed_m_s {
            flags |= FLAG_SPEED;
            rec[20..22].copy_from_slice(&((s * 100.0).round() as u16).to_le_bytes());
        }
        if let Some(h) = t.heading_deg {
            flags |= FLAG_HEADING;
            rec[22..24].copy_from_slice(&((h * 100.0).round() as u16).to_le_bytes());
        }
        if let Some(o) = t.odometer_m {
            flags |= FLAG_ODOMETER;
            rec[24..28].copy_from_slice(&o.to_le_bytes());
        }
        rec[1] = flags;
        out.extend_from_slice(&rec);
    }
    out
}

/// Decodes a JSON MQTT telemetry message: one report object or an array of them.
#[must_use]
pub fn decode_json(vehicle: VehicleId, payload: &[u8]) -> Vec<Result<Telemetry, Invalid>> {
    let value: serde_json::Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => return vec![Err(Invalid::Malformed(e.to_string()))],
    };
    let items = match value {
        serde_json::Value::Array(items) if items.len() > MQTT_JSON_REPORTS_MAX => {
            return vec![Err(Invalid::Malformed(format!(
                "at most {MQTT_JSON_REPORTS_MAX} reports per message"
            )))];
        }
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    items
        .into_iter()
        .map(|item| {
            serde_json::from_value::<RawReport>(item)
                .map_err(|e| Invalid::Malformed(e.to_string()))
                .and_then(|r| r.validate(Some(vehicle)))
        })
        .collect()
}

/// One message on a vehicle's `events` channel (or its will), as it arrives: `{"type": "imu",
/// "ts": …, "peak_g": 3.1}`, `{"type": "offline"}`, `{"type": "fault", "codes": [12]}`,
/// `{"type": "tamper", "what": "battery_lid"}`; other types are kept as they are named.
#[derive(Debug, Deserialize)]
struct RawVehicleEvent {
    #[serde(rename = "type")]
    kind: String,
    ts: Option<i64>,
    peak_g: Option<f32>,
    #[serde(default)]
    codes: Vec<u16>,
    what: Option<String>,
}

/// Longest event type name kept.
const EVENT_KIND_BYTES_MAX: usize = 64;

/// Decodes a vehicle's event: when it happened (its own time if plausible, else `now`) and
/// the signal.
pub fn decode_vehicle_event(
    payload: &[u8],
    now: TimestampMs,
) -> Result<(TimestampMs, mobility_core::VehicleSignal), Invalid> {
    use mobility_core::VehicleSignal;
    let raw: RawVehicleEvent =
        serde_json::from_slice(payload).map_err(|e| Invalid::Malformed(e.to_string()))?;
    let at = raw
        .ts
        .filter(|ts| {
            (now.0 - 86_400_000..=now.0 + mobility_fleet::telemetry::FUTURE_SKEW_MS_MAX)
                .contains(ts)
        })
        .map_or(now, TimestampMs);
    let signal = match raw.kind.as_str() {
        "imu" => {
            let peak_g = raw
                .peak_g
                .filter(|g| g.is_finite() && (0.0..=1_000.0).contains(g))
                .ok_or_else(|| {
                    Invalid::Field("an imu event needs peak_g between 0 and 1000".into())
                })?;
            VehicleSignal::Imu { peak_g }
        }
        "offline" => VehicleSignal::Offline,
        "fault" => {
            let mut codes = raw.codes;
            codes.truncate(ERROR_CODES_MAX);
            VehicleSignal::Fault { codes }
        }
        "tamper" => VehicleSignal::Tamper {
            what: raw
                .what
                .unwrap_or_default()
                .chars()
                .take(EVENT_KIND_BYTES_MAX)
                .collect(),
        },
        other if !other.is_empty() && other.len() <= EVENT_KIND_BYTES_MAX => VehicleSignal::Other {
            kind: other.to_owned(),
        },
        _ => return Err(Invalid::Field("type must be 1 to 64 characters".into())),
    };
    Ok((at, signal))
}

/// Counter handles per ingest source, registered once: the `counter!` macro with labels looks
/// the counter up on every call, which is measurable on the hot path (millions of reports/s).
#[derive(Debug, Clone)]
pub struct IngestCounters {
    received: metrics::Counter,
    applied: metrics::Counter,
    duplicates: metrics::Counter,
    source: &'static str,
}

impl IngestCounters {
    /// Handles for `source` (`http`, `mqtt`).
    #[must_use]
    pub fn new(source: &'static str) -> Self {
        Self {
            received: metrics::counter!("telemetry_received_total", "source" => source),
            applied: metrics::counter!("telemetry_applied_total", "source" => source),
            duplicates: metrics::counter!("telemetry_duplicates_total", "source" => source),
            source,
        }
    }

    /// Counts reports received (before validation).
    pub fn received(&self, n: u64) {
        self.received.increment(n);
    }

    /// Counts the outcomes of a batch.
    pub fn outcomes(&self, outcomes: &[Result<Verdict, Reject>]) {
        let (mut applied, mut duplicates) = (0, 0);
        for o in outcomes {
            match o {
                Ok(Verdict::Applied) => applied += 1,
                Ok(Verdict::Duplicate) => duplicates += 1,
                Err(_) => count_outcome(self.source, o),
            }
        }
        if applied > 0 {
            self.applied.increment(applied);
        }
        if duplicates > 0 {
            self.duplicates.increment(duplicates);
        }
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
        .validate(None)
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
            let err = raw(&json).validate(None).unwrap_err();
            assert_eq!(err.label(), label, "{json}: {err}");
        }
    }

    #[test]
    fn topic_vehicle_fills_in_and_must_agree() {
        let id = VehicleId::parse(ID).unwrap();
        let other = VehicleId::parse("0190f1c2-7a3b-7cde-8f01-000000000000").unwrap();
        let t = raw(r#"{"ts":5,"lat":41.0,"lon":2.0}"#)
            .validate(Some(id))
            .unwrap();
        assert_eq!(t.vehicle_id, id);
        assert!(
            raw(r#"{"ts":5,"lat":41.0,"lon":2.0}"#)
                .validate(None)
                .is_err()
        );
        let mismatch = raw(&format!(
            r#"{{"vehicle_id":"{ID}","ts":5,"lat":41.0,"lon":2.0}}"#
        ))
        .validate(Some(other));
        assert_eq!(mismatch.unwrap_err().label(), "invalid_field");
    }

    #[test]
    fn binary_records_round_trip_and_bad_ones_are_refused() {
        let id = VehicleId::parse(ID).unwrap();
        let t = Telemetry {
            vehicle_id: id,
            at: TimestampMs(1_800_000_000_123),
            position: LatLon::new(41.3851234, 2.1734567).unwrap(),
            battery: Some(BatteryPct::new(64).unwrap()),
            speed_m_s: Some(5.25),
            heading_deg: Some(181.5),
            odometer_m: Some(98_765),
            locked: Some(false),
            error_codes: vec![],
        };
        let mut no_optionals = t.clone();
        (
            no_optionals.battery,
            no_optionals.speed_m_s,
            no_optionals.heading_deg,
        ) = (None, None, None);
        (no_optionals.odometer_m, no_optionals.locked) = (None, None);
        let bytes = encode_binary(&[t.clone(), no_optionals.clone()]);
        assert_eq!(bytes.len(), 64);
        let back: Vec<Telemetry> = decode_binary(id, &bytes)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, vec![t.clone(), no_optionals]);
        assert_eq!(
            decode_binary(id, &bytes[..31])[0]
                .as_ref()
                .unwrap_err()
                .label(),
            "malformed"
        );
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(decode_binary(id, &bad)[0].is_err());
        assert!(
            decode_binary(id, &bad)[1].is_ok(),
            "records are judged one by one"
        );
        let mut far = encode_binary(&[t]);
        far[12..16].copy_from_slice(&950_000_000i32.to_le_bytes()); // 95° N
        assert_eq!(
            decode_binary(id, &far)[0].as_ref().unwrap_err().label(),
            "invalid_position"
        );
    }

    #[test]
    fn json_messages_hold_one_report_or_a_batch() {
        let id = VehicleId::parse(ID).unwrap();
        assert_eq!(
            decode_json(id, br#"{"ts":1,"lat":41.0,"lon":2.0}"#).len(),
            1
        );
        let batch = decode_json(
            id,
            br#"[{"ts":1,"lat":41.0,"lon":2.0},{"ts":2,"lat":91.0,"lon":2.0}]"#,
        );
        assert!(batch[0].is_ok() && batch[1].is_err());
        assert_eq!(
            decode_json(id, b"{not json")[0]
                .as_ref()
                .unwrap_err()
                .label(),
            "malformed"
        );
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
