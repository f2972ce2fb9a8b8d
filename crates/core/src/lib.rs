//! The pure domain core of the mobility platform.
//!
//! Everything here is plain data and pure functions: no IO, no async runtime, no clock and no
//! randomness. Time (`TimestampMs`) and identifiers are passed in, so the simulator, the tests
//! and the server drive exactly the same code deterministically.
//!
//! Values are parsed at the edges into the types defined here ("parse, don't validate"): a
//! `LatLon` is always in range, a `BatteryPct` is always 0..=100, `Money` is integer minor units
//! of one currency. Vehicle states and event types follow MDS 2.0.

pub mod access;
pub mod battery;
pub mod booking;
pub mod city;
pub mod clock;
pub mod command;
pub mod digest;
pub mod events;
pub mod ids;
pub mod money;
pub mod payments;
pub mod position;
pub mod pricing;
pub mod state_machine;
pub mod telemetry;
pub mod time;
pub mod vehicle;

pub use access::Role;
pub use battery::BatteryPct;
pub use booking::BookingState;
pub use city::{City, OperatingArea};
pub use clock::{Clock, ManualClock};
pub use command::{AckOutcome, AckStatus, CommandKind, CommandState};
pub use events::{Domain, DomainEvent, NewEvent, SearchCount, VehicleSignal};
pub use ids::{CityId, VehicleId};
pub use money::{Currency, Money};
pub use position::LatLon;
pub use pricing::{Fare, PassBenefit, Tariff, fare, fare_with_pass};
pub use state_machine::{EventType, IllegalTransition, Mode, VehicleState};
pub use telemetry::Telemetry;
pub use time::TimestampMs;
pub use vehicle::{StateChange, Vehicle, VehicleType};

/// A value that failed to parse, with what was wrong in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct ParseError {
    /// The kind of value, e.g. `"latitude"` or `"city id"`.
    pub what: &'static str,
    /// Why it was rejected.
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            what,
            reason: reason.into(),
        }
    }
}
