//! One validated telemetry report, as every part of the platform sees it (the live index
//! applies it, the event bus carries it, the simulator produces it).

use serde::{Deserialize, Serialize};

use crate::{BatteryPct, LatLon, TimestampMs, VehicleId};

/// Most error codes kept from one report.
pub const ERROR_CODES_MAX: usize = 16;

/// One validated telemetry report from a vehicle. Fields other than position are optional:
/// a device may send only what changed or what it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// The reporting vehicle.
    pub vehicle_id: VehicleId,
    /// When the vehicle measured this (its clock, ms since the epoch).
    pub at: TimestampMs,
    /// Where it is.
    pub position: LatLon,
    /// State of charge.
    pub battery: Option<BatteryPct>,
    /// Ground speed in m/s (0..=100).
    pub speed_m_s: Option<f32>,
    /// Heading in degrees clockwise from north (0..360).
    pub heading_deg: Option<f32>,
    /// Total distance travelled, metres.
    pub odometer_m: Option<u32>,
    /// Whether the lock is engaged.
    pub locked: Option<bool>,
    /// Active fault codes (at most [`ERROR_CODES_MAX`]).
    pub error_codes: Vec<u16>,
}
