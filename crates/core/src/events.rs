//! Domain events: what happened in the platform, as the event bus carries it to every consumer
//! (reactions, the dashboard stream, the MDS log, later the lakehouse and other regions).
//!
//! An event is a fact in the past tense. It is published only once it is true (after the
//! store committed it, or after the live log made a report durable), so a consumer never acts
//! on something that did not happen. Each event belongs to one [`Domain`]; a domain is one
//! stream of the bus with its own retention, and its subjects are split by city.
//!
//! The wire format (how an event is encoded on the bus) is the bus crate's business; the
//! shape here is plain data with serde derives, so fields may be added (as options) without
//! breaking events already in a log.

use serde::{Deserialize, Serialize};

use crate::{CityId, EventType, Money, TimestampMs, VehicleId, VehicleState, telemetry::Telemetry};

/// The streams of the bus: one per domain, each with its own retention and subjects per city.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Batches of accepted vehicle telemetry (high volume, short retention).
    Telemetry,
    /// What vehicles report besides telemetry: IMU events, faults, tamper, going offline.
    Vehicle,
    /// MDS vehicle lifecycle: state changes with their event types.
    Lifecycle,
    /// Booking state changes.
    Booking,
    /// Payments: holds, captures, charges, refunds.
    Payment,
    /// Accounts and KYC decisions.
    Account,
    /// Geofence crossings and fleet alerts.
    Fleet,
    /// Riders' demand: their searches per H3 zone and minute (what forecasts learn from).
    Demand,
    /// Every admin change (who did what to what): the audit trail.
    Admin,
    /// Events a consumer could not handle after its attempts, with the consumer's name.
    DeadLetter,
}

impl Domain {
    /// Every domain, in a fixed order.
    pub const ALL: [Self; 10] = [
        Self::Telemetry,
        Self::Vehicle,
        Self::Lifecycle,
        Self::Booking,
        Self::Payment,
        Self::Account,
        Self::Fleet,
        Self::Demand,
        Self::Admin,
        Self::DeadLetter,
    ];

    /// Stable lower-case name: the first token of the domain's subjects.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::Vehicle => "vehicle",
            Self::Lifecycle => "lifecycle",
            Self::Booking => "booking",
            Self::Payment => "payment",
            Self::Account => "account",
            Self::Fleet => "fleet",
            Self::Demand => "demand",
            Self::Admin => "admin",
            Self::DeadLetter => "dead_letter",
        }
    }

    /// The domain named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a vehicle said on its `events` channel (or what its broker said for it: the will).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
pub enum VehicleSignal {
    /// An acceleration peak (crash, fall, kerb strike), in g.
    Imu {
        /// Peak acceleration, g.
        peak_g: f32,
    },
    /// The vehicle's connection was lost (its will) or it said it is going offline.
    Offline,
    /// Fault codes raised.
    Fault {
        /// The codes.
        codes: Vec<u16>,
    },
    /// Lid or battery compartment opened, alarm.
    Tamper {
        /// What the vehicle said.
        what: String,
    },
    /// A signal this platform does not interpret yet (kept, so a later consumer can).
    Other {
        /// The vehicle's `type` field.
        kind: String,
    },
}

impl VehicleSignal {
    /// Stable label.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Imu { .. } => "imu",
            Self::Offline => "offline",
            Self::Fault { .. } => "fault",
            Self::Tamper { .. } => "tamper",
            Self::Other { .. } => "other",
        }
    }
}

/// Searches in one zone and minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchCount {
    /// The H3 cell.
    pub cell: String,
    /// Searches.
    pub searches: u32,
    /// Searches that found no vehicle.
    pub unmet: u32,
}

/// Something that happened, with the facts a consumer needs to react without asking back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DomainEvent {
    /// Reports the live state accepted (applied, or late but kept for history), durable in the
    /// live log.
    TelemetryAccepted {
        /// The reports, in the order they were applied.
        reports: Vec<Telemetry>,
    },
    /// A vehicle's signal on its `events` channel, or its will.
    VehicleReported {
        /// The vehicle.
        vehicle: VehicleId,
        /// When (the vehicle's time if it said, else when the platform heard it).
        at: TimestampMs,
        /// What it said.
        signal: VehicleSignal,
    },
    /// A vehicle crossed a geofence (computed from applied reports only).
    GeofenceCrossed {
        /// The vehicle.
        vehicle: VehicleId,
        /// Vehicle time of the report.
        at: TimestampMs,
        /// The fence.
        fence_id: String,
        /// The fence's zone kind.
        zone: String,
        /// `enter` or `exit`.
        direction: String,
        /// The speed limit the vehicle should now have, if a slow zone changed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speed_limit_kmh: Option<u8>,
    },
    /// An alert staff should see (leaving the operating area, riding into a no-riding zone).
    FleetAlert {
        /// The vehicle.
        vehicle: VehicleId,
        /// Vehicle time of the report.
        at: TimestampMs,
        /// The alert's name.
        alert: String,
        /// The fence.
        fence_id: String,
        /// The fence's zone kind.
        zone: String,
    },
    /// Riders searched for vehicles: counts per H3 zone in one minute, as one process saw them
    /// (processes' counts add up).
    RidersSearched {
        /// The minute's start.
        minute: TimestampMs,
        /// Per zone (H3 cell, resolution 8): searches, and those that found nothing.
        cells: Vec<SearchCount>,
    },
    /// An MDS state change was recorded.
    VehicleStateChanged {
        /// The vehicle.
        vehicle: VehicleId,
        /// When.
        at: TimestampMs,
        /// State before.
        from: VehicleState,
        /// State after.
        to: VehicleState,
        /// Its MDS event types, in order.
        event_types: Vec<EventType>,
        /// The trip (booking), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trip_id: Option<String>,
        /// Where the vehicle was, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<crate::LatLon>,
    },
    /// A booking moved from one state to another.
    BookingChanged {
        /// The booking.
        booking: String,
        /// The rider.
        user: String,
        /// The vehicle.
        vehicle: VehicleId,
        /// State before (none for a new booking).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// State after.
        to: String,
        /// When.
        at: TimestampMs,
    },
    /// A payment was recorded.
    PaymentRecorded {
        /// The payment's idempotency key.
        key: String,
        /// The rider.
        user: String,
        /// The booking it belongs to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        booking: Option<String>,
        /// What it is.
        kind: crate::payments::PaymentKind,
        /// How it ended.
        state: crate::payments::PaymentState,
        /// The amount.
        amount: Money,
        /// The provider that took it.
        provider: String,
        /// When.
        at: TimestampMs,
    },
    /// A rider's KYC submission was decided.
    KycDecided {
        /// The rider.
        user: String,
        /// The submission.
        submission: String,
        /// `identity` or `driving_licence`.
        kind: String,
        /// The new state: `verified` or `rejected`.
        decision: String,
        /// When.
        at: TimestampMs,
    },
    /// An administrator (or a staff member, or a gateway token) changed something.
    AdminChanged {
        /// Who: the caller's account id or token name.
        actor: String,
        /// What they did, e.g. `vehicle.register`, `zone.delete`.
        action: String,
        /// What they did it to.
        target: String,
        /// When.
        at: TimestampMs,
    },
    /// An event a consumer gave up on, carried whole to the dead-letter stream.
    DeadLettered {
        /// The consumer that gave up.
        consumer: String,
        /// Its attempts.
        attempts: u32,
        /// The original event's subject.
        subject: String,
        /// The original event's sequence in its stream.
        seq: u64,
        /// The original envelope, as the bus encoded it.
        original: String,
    },
}

impl DomainEvent {
    /// The stream this event belongs to.
    #[must_use]
    pub const fn domain(&self) -> Domain {
        match self {
            Self::TelemetryAccepted { .. } => Domain::Telemetry,
            Self::VehicleReported { .. } => Domain::Vehicle,
            Self::GeofenceCrossed { .. } | Self::FleetAlert { .. } => Domain::Fleet,
            Self::VehicleStateChanged { .. } => Domain::Lifecycle,
            Self::RidersSearched { .. } => Domain::Demand,
            Self::BookingChanged { .. } => Domain::Booking,
            Self::PaymentRecorded { .. } => Domain::Payment,
            Self::KycDecided { .. } => Domain::Account,
            Self::AdminChanged { .. } => Domain::Admin,
            Self::DeadLettered { .. } => Domain::DeadLetter,
        }
    }

    /// Stable type name (`<domain>.<what>`), carried in the envelope.
    #[must_use]
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::TelemetryAccepted { .. } => "telemetry.accepted",
            Self::VehicleReported { .. } => "vehicle.reported",
            Self::GeofenceCrossed { .. } => "fleet.geofence_crossed",
            Self::FleetAlert { .. } => "fleet.alert",
            Self::VehicleStateChanged { .. } => "lifecycle.state_changed",
            Self::RidersSearched { .. } => "demand.searched",
            Self::BookingChanged { .. } => "booking.changed",
            Self::PaymentRecorded { .. } => "payment.recorded",
            Self::KycDecided { .. } => "account.kyc_decided",
            Self::AdminChanged { .. } => "admin.changed",
            Self::DeadLettered { .. } => "dead_letter.event",
        }
    }
}

/// An event about to be published: the event, its unique id (publishing the same id twice
/// stores it once), and where it belongs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique id; a retry with the same id is a duplicate, not a second event.
    pub id: uuid::Uuid,
    /// The city it happened in, if it belongs to one (subjects are per city).
    pub city: Option<CityId>,
    /// When it happened.
    pub at: TimestampMs,
    /// The event.
    pub event: DomainEvent,
}

impl NewEvent {
    /// An event with the given id.
    #[must_use]
    pub const fn new(
        id: uuid::Uuid,
        city: Option<CityId>,
        at: TimestampMs,
        event: DomainEvent,
    ) -> Self {
        Self {
            id,
            city,
            at,
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_round_trip_by_name() {
        for d in Domain::ALL {
            assert_eq!(Domain::parse(d.as_str()), Some(d));
        }
        assert_eq!(Domain::parse("nope"), None);
    }

    #[test]
    fn every_event_names_its_own_domain_first() {
        let e = DomainEvent::KycDecided {
            user: "u".into(),
            submission: "s".into(),
            kind: "identity".into(),
            decision: "verified".into(),
            at: TimestampMs(1),
        };
        assert!(e.type_name().starts_with(e.domain().as_str()));
        let a = DomainEvent::AdminChanged {
            actor: "a".into(),
            action: "x".into(),
            target: "t".into(),
            at: TimestampMs(1),
        };
        assert!(a.type_name().starts_with(a.domain().as_str()));
    }
}
