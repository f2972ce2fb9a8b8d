//! MDS 2.0 vehicle states, event types and the state machines of the modes we run.
//!
//! The transition tables are transcribed row by row from the MDS 2.0 mode documents
//! (`modes/micromobility.md` and `modes/car-share.md`, "Vehicle State Events"), so that a reader
//! can audit them against the spec side by side. A transition is legal when the triple
//! (from, event, to) appears in the table of the vehicle's mode; anything else is rejected.
//!
//! MDS says the *prior* state must not be enforced when ingesting events that may arrive out of
//! order. That is the ingest layer's decision (it may record an event without applying it); this
//! module answers the pure question "is this a legal transition".

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ParseError;

/// The MDS mode a vehicle operates under; each has its own state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Scooters and bikes (`micromobility`).
    Micromobility,
    /// Cars and vans rented by the minute (`car-share`).
    CarShare,
}

impl Mode {
    /// The MDS mode id.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Micromobility => "micromobility",
            Self::CarShare => "car-share",
        }
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $s:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The MDS name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s,)+ }
            }

            /// Parses the MDS name.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($s => Ok(Self::$variant),)+
                    other => Err(ParseError::new($what, format!("{other:?} is not an MDS 2.0 {}", $what))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

string_enum!(
    /// MDS 2.0 `vehicle_state`.
    VehicleState, "vehicle state" {
        /// Not in the public right of way (depot, warehouse, decommissioned).
        Removed = "removed",
        /// Rentable.
        Available = "available",
        /// In the right of way but not rentable (low battery, maintenance, off hours).
        NonOperational = "non_operational",
        /// Held for a customer.
        Reserved = "reserved",
        /// On a trip.
        OnTrip = "on_trip",
        /// Car share: a trip is paused with the vehicle stopped.
        Stopped = "stopped",
        /// Not communicating.
        NonContactable = "non_contactable",
        /// Not where it last reported, or its location is wildly wrong.
        Missing = "missing",
        /// Outside the jurisdiction.
        Elsewhere = "elsewhere",
    }
);

string_enum!(
    /// MDS 2.0 `event_type` (the union over modes; each mode's table uses a subset).
    EventType, "event type" {
        AgencyDropOff = "agency_drop_off",
        AgencyPickUp = "agency_pick_up",
        BatteryCharged = "battery_charged",
        BatteryLow = "battery_low",
        ChangedGeographies = "changed_geographies",
        ChargingEnd = "charging_end",
        ChargingStart = "charging_start",
        CommsLost = "comms_lost",
        CommsRestored = "comms_restored",
        CompliancePickUp = "compliance_pick_up",
        CustomerCancellation = "customer_cancellation",
        Decommissioned = "decommissioned",
        DriverCancellation = "driver_cancellation",
        FuelingEnd = "fueling_end",
        FuelingStart = "fueling_start",
        Located = "located",
        Maintenance = "maintenance",
        MaintenanceEnd = "maintenance_end",
        MaintenancePickUp = "maintenance_pick_up",
        NotLocated = "not_located",
        OffHours = "off_hours",
        OnHours = "on_hours",
        OrderDropOff = "order_drop_off",
        OrderPickUp = "order_pick_up",
        PassengerCancellation = "passenger_cancellation",
        ProviderCancellation = "provider_cancellation",
        ProviderDropOff = "provider_drop_off",
        RebalancePickUp = "rebalance_pick_up",
        /// The global enum says `recommission`; the car-share table says `recommissioned`.
        /// We follow the global enum (`data-types/event-type.yaml`), which validators check first.
        Recommission = "recommission",
        RemoteEnd = "remote_end",
        RemoteStart = "remote_start",
        ReservationCancel = "reservation_cancel",
        ReservationStart = "reservation_start",
        ReservationStop = "reservation_stop",
        ServiceEnd = "service_end",
        ServiceStart = "service_start",
        SystemResume = "system_resume",
        SystemSuspend = "system_suspend",
        TripCancel = "trip_cancel",
        TripEnd = "trip_end",
        TripEnterJurisdiction = "trip_enter_jurisdiction",
        TripLeaveJurisdiction = "trip_leave_jurisdiction",
        TripPause = "trip_pause",
        TripResume = "trip_resume",
        TripStart = "trip_start",
        TripStop = "trip_stop",
        Unspecified = "unspecified",
    }
);

impl EventType {
    /// MDS requires `trip_ids` on events with these types.
    #[must_use]
    pub const fn needs_trip_id(self) -> bool {
        matches!(
            self,
            Self::TripStart
                | Self::TripEnd
                | Self::TripCancel
                | Self::TripEnterJurisdiction
                | Self::TripLeaveJurisdiction
                | Self::TripResume
                | Self::TripStop
        )
    }
}

/// One row of an MDS "Vehicle State Events" table.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    /// Valid prior states.
    pub from: &'static [VehicleState],
    /// The state after the event.
    pub to: VehicleState,
    /// The event.
    pub event: EventType,
}

use EventType as E;
use VehicleState as S;

const fn row(from: &'static [VehicleState], to: VehicleState, event: EventType) -> Transition {
    Transition { from, to, event }
}

/// MDS 2.0 `modes/micromobility.md`, "Vehicle State Events", in the spec's order.
pub const MICROMOBILITY: &[Transition] = &[
    row(&[S::Available], S::NonOperational, E::BatteryLow),
    row(&[S::Available], S::NonOperational, E::Maintenance),
    row(&[S::Available], S::NonOperational, E::OffHours),
    row(&[S::Available], S::Reserved, E::ReservationStart),
    row(&[S::Available], S::NonOperational, E::SystemSuspend),
    row(
        &[
            S::Available,
            S::Elsewhere,
            S::NonOperational,
            S::OnTrip,
            S::Removed,
            S::Reserved,
        ],
        S::NonContactable,
        E::CommsLost,
    ),
    row(
        &[
            S::Available,
            S::Elsewhere,
            S::NonOperational,
            S::OnTrip,
            S::Removed,
            S::Reserved,
        ],
        S::NonContactable,
        E::Unspecified,
    ),
    row(
        &[S::Available, S::NonContactable, S::Missing],
        S::NonOperational,
        E::Unspecified,
    ),
    row(
        &[S::Available, S::NonOperational, S::Elsewhere],
        S::Removed,
        E::CompliancePickUp,
    ),
    row(
        &[S::Available, S::NonOperational, S::Elsewhere],
        S::Removed,
        E::MaintenancePickUp,
    ),
    row(
        &[S::Available, S::NonOperational, S::Elsewhere],
        S::Removed,
        E::RebalancePickUp,
    ),
    row(
        &[
            S::Available,
            S::NonOperational,
            S::Elsewhere,
            S::NonContactable,
            S::Missing,
        ],
        S::Removed,
        E::AgencyPickUp,
    ),
    row(
        &[
            S::Available,
            S::NonOperational,
            S::Elsewhere,
            S::NonContactable,
            S::Missing,
        ],
        S::Removed,
        E::Decommissioned,
    ),
    row(&[S::Available, S::Reserved], S::OnTrip, E::TripStart),
    row(&[S::Elsewhere], S::OnTrip, E::TripEnterJurisdiction),
    row(&[S::Missing], S::Available, E::Located),
    row(&[S::Missing], S::Elsewhere, E::Located),
    row(&[S::Missing], S::NonOperational, E::Located),
    row(&[S::Missing], S::OnTrip, E::Located),
    row(&[S::Missing], S::Removed, E::Located),
    row(&[S::Missing], S::Reserved, E::Located),
    row(&[S::NonContactable], S::Available, E::CommsRestored),
    row(&[S::NonContactable], S::Elsewhere, E::CommsRestored),
    row(&[S::NonContactable], S::NonOperational, E::CommsRestored),
    row(&[S::NonContactable], S::OnTrip, E::CommsRestored),
    row(&[S::NonContactable], S::Removed, E::CommsRestored),
    row(&[S::NonContactable], S::Reserved, E::CommsRestored),
    row(&[S::NonContactable], S::Missing, E::NotLocated),
    row(&[S::NonContactable], S::Missing, E::Unspecified),
    row(
        &[S::NonContactable, S::Missing],
        S::Elsewhere,
        E::Unspecified,
    ),
    row(&[S::NonContactable, S::Missing], S::OnTrip, E::Unspecified),
    row(
        &[S::NonContactable, S::Missing],
        S::Reserved,
        E::Unspecified,
    ),
    row(
        &[
            S::NonContactable,
            S::Missing,
            S::NonOperational,
            S::Available,
            S::Elsewhere,
        ],
        S::Removed,
        E::Unspecified,
    ),
    row(&[S::NonOperational], S::Available, E::BatteryCharged),
    row(&[S::NonOperational], S::Available, E::Maintenance),
    row(&[S::NonOperational], S::Available, E::OnHours),
    row(&[S::NonOperational], S::Available, E::SystemResume),
    row(
        &[S::NonOperational, S::NonContactable, S::Missing],
        S::Available,
        E::Unspecified,
    ),
    row(&[S::OnTrip], S::OnTrip, E::ChangedGeographies),
    row(&[S::OnTrip], S::Available, E::TripCancel),
    row(&[S::OnTrip], S::Available, E::TripEnd),
    row(&[S::OnTrip], S::Elsewhere, E::TripLeaveJurisdiction),
    row(
        &[S::Removed, S::NonContactable, S::Missing],
        S::Available,
        E::AgencyDropOff,
    ),
    row(
        &[S::Removed, S::NonContactable, S::Missing],
        S::Available,
        E::ProviderDropOff,
    ),
    row(&[S::Reserved], S::Available, E::ReservationCancel),
];

/// MDS 2.0 `modes/car-share.md`, "Vehicle States Events", in the spec's order.
pub const CAR_SHARE: &[Transition] = &[
    row(&[S::Available], S::Elsewhere, E::TripLeaveJurisdiction),
    row(&[S::Available], S::NonContactable, E::CommsLost),
    row(&[S::Available], S::NonOperational, E::ServiceEnd),
    row(&[S::Available], S::Reserved, E::ReservationStart),
    row(&[S::Elsewhere], S::Available, E::TripEnterJurisdiction),
    row(&[S::Elsewhere], S::NonContactable, E::CommsLost),
    row(&[S::Elsewhere], S::NonOperational, E::TripEnterJurisdiction),
    row(&[S::Elsewhere], S::OnTrip, E::TripEnterJurisdiction),
    row(&[S::Elsewhere], S::Reserved, E::TripEnterJurisdiction),
    row(&[S::NonContactable], S::Available, E::CommsRestored),
    row(&[S::NonContactable], S::Elsewhere, E::CommsRestored),
    row(&[S::NonContactable], S::NonOperational, E::CommsRestored),
    row(&[S::NonContactable], S::OnTrip, E::CommsRestored),
    row(&[S::NonContactable], S::Removed, E::CommsRestored),
    row(&[S::NonContactable], S::Reserved, E::CommsRestored),
    row(&[S::NonContactable], S::Stopped, E::CommsRestored),
    row(&[S::NonOperational], S::Available, E::ServiceStart),
    row(&[S::NonOperational], S::Elsewhere, E::TripLeaveJurisdiction),
    row(&[S::NonOperational], S::NonContactable, E::CommsLost),
    row(&[S::NonOperational], S::Removed, E::Decommissioned),
    row(&[S::NonOperational], S::Removed, E::MaintenancePickUp),
    row(&[S::NonOperational], S::Removed, E::Maintenance),
    row(&[S::OnTrip], S::Elsewhere, E::TripLeaveJurisdiction),
    row(&[S::OnTrip], S::NonContactable, E::CommsLost),
    row(&[S::OnTrip], S::Stopped, E::TripStop),
    row(&[S::Removed], S::NonContactable, E::CommsLost),
    row(&[S::Removed], S::NonOperational, E::MaintenanceEnd),
    row(&[S::Removed], S::NonOperational, E::Recommission),
    row(&[S::Reserved], S::Available, E::DriverCancellation),
    row(&[S::Reserved], S::Available, E::CustomerCancellation),
    row(&[S::Reserved], S::Available, E::ProviderCancellation),
    row(&[S::Reserved], S::Elsewhere, E::TripLeaveJurisdiction),
    row(&[S::Reserved], S::NonContactable, E::CommsLost),
    row(&[S::Reserved], S::Stopped, E::ReservationStop),
    row(&[S::Stopped], S::Available, E::DriverCancellation),
    row(&[S::Stopped], S::Available, E::CustomerCancellation),
    row(&[S::Stopped], S::Available, E::ProviderCancellation),
    row(&[S::Stopped], S::Available, E::TripEnd),
    row(&[S::Stopped], S::NonContactable, E::CommsLost),
    row(&[S::Stopped], S::OnTrip, E::TripResume),
    row(&[S::Stopped], S::OnTrip, E::TripStart),
    row(&[S::Stopped], S::Stopped, E::ChargingEnd),
    row(&[S::Stopped], S::Stopped, E::ChargingStart),
    row(&[S::Stopped], S::Stopped, E::FuelingEnd),
    row(&[S::Stopped], S::Stopped, E::FuelingStart),
    row(&[S::Stopped], S::Stopped, E::RemoteEnd),
    row(&[S::Stopped], S::Stopped, E::RemoteStart),
];

/// A transition the mode's state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IllegalTransition {
    /// No row (from, event, to) exists.
    #[error("{mode} vehicles cannot go from {from} to {to} on {event}", mode = .mode.as_str())]
    NotInTable {
        /// The vehicle's mode.
        mode: Mode,
        /// The state before.
        from: VehicleState,
        /// The event.
        event: EventType,
        /// The requested state after.
        to: VehicleState,
    },
    /// An event list was empty.
    #[error("an event needs at least one event type")]
    NoEvents,
    /// More event types than one event may carry.
    #[error("an event may carry at most {max} event types, not {count}")]
    TooManyEvents {
        /// How many were sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A late event whose types lead to its state from no state at all.
    #[error("{mode} vehicles never reach {to} through {events}", mode = .mode.as_str())]
    Unreachable {
        /// The vehicle's mode.
        mode: Mode,
        /// The event types, comma-separated.
        events: String,
        /// The state claimed after.
        to: VehicleState,
    },
    /// An intermediate event in a multi-type event can lead to several states, so the path is unknown.
    #[error("{event} from {from} can lead to several states; send it last or on its own")]
    Ambiguous {
        /// The state before the ambiguous event.
        from: VehicleState,
        /// The ambiguous event.
        event: EventType,
    },
}

impl Mode {
    /// The mode's transition table.
    #[must_use]
    pub const fn table(self) -> &'static [Transition] {
        match self {
            Self::Micromobility => MICROMOBILITY,
            Self::CarShare => CAR_SHARE,
        }
    }

    /// The states this mode uses.
    #[must_use]
    pub fn states(self) -> Vec<VehicleState> {
        VehicleState::ALL
            .iter()
            .copied()
            .filter(|s| {
                self.table()
                    .iter()
                    .any(|t| t.to == *s || t.from.contains(s))
            })
            .collect()
    }

    /// Is (from, event, to) a row of this mode's table?
    #[must_use]
    pub fn allows(self, from: VehicleState, event: EventType, to: VehicleState) -> bool {
        self.table()
            .iter()
            .any(|t| t.event == event && t.to == to && t.from.contains(&from))
    }

    /// The states `event` can lead to from `from`.
    pub fn targets(
        self,
        from: VehicleState,
        event: EventType,
    ) -> impl Iterator<Item = VehicleState> {
        self.table()
            .iter()
            .filter(move |t| t.event == event && t.from.contains(&from))
            .map(|t| t.to)
    }

    /// Checks one transition and returns the new state.
    pub fn transition(
        self,
        from: VehicleState,
        event: EventType,
        to: VehicleState,
    ) -> Result<VehicleState, IllegalTransition> {
        if self.allows(from, event, to) {
            Ok(to)
        } else {
            Err(IllegalTransition::NotInTable {
                mode: self,
                from,
                event,
                to,
            })
        }
    }

    /// Applies an MDS event with several ordered event types: each but the last must lead to
    /// exactly one state (the intermediate states are discarded, as MDS says), the last must
    /// lead to `to`.
    pub fn apply_events(
        self,
        from: VehicleState,
        events: &[EventType],
        to: VehicleState,
    ) -> Result<VehicleState, IllegalTransition> {
        let Some((last, init)) = events.split_last() else {
            return Err(IllegalTransition::NoEvents);
        };
        let mut state = from;
        for &event in init {
            let mut targets = self.targets(state, event);
            match (targets.next(), targets.next()) {
                (Some(next), None) => state = next,
                (None, _) => {
                    return Err(IllegalTransition::NotInTable {
                        mode: self,
                        from: state,
                        event,
                        to,
                    });
                }
                (Some(_), Some(_)) => {
                    return Err(IllegalTransition::Ambiguous { from: state, event });
                }
            }
        }
        self.transition(state, *last, to)
    }

    /// The path of an accepted multi-type event, one `(event type, state after it)` per type:
    /// the intermediate states [`Mode::apply_events`] discards. (Published MDS events carry one
    /// type each, so every type sits with the state it leads to.)
    pub fn steps(
        self,
        from: VehicleState,
        events: &[EventType],
        to: VehicleState,
    ) -> Result<Vec<(EventType, VehicleState)>, IllegalTransition> {
        let mut out = Vec::with_capacity(events.len());
        let mut state = from;
        for (i, &event) in events.iter().enumerate() {
            if i + 1 == events.len() {
                self.transition(state, event, to)?;
                out.push((event, to));
            } else {
                state = self.apply_events(state, &[event], self.only_target(state, event)?)?;
                out.push((event, state));
            }
        }
        Ok(out)
    }

    fn only_target(
        self,
        from: VehicleState,
        event: EventType,
    ) -> Result<VehicleState, IllegalTransition> {
        let mut targets = self.targets(from, event);
        match (targets.next(), targets.next()) {
            (Some(next), None) => Ok(next),
            (None, _) => Err(IllegalTransition::NotInTable {
                mode: self,
                from,
                event,
                to: from,
            }),
            (Some(_), Some(_)) => Err(IllegalTransition::Ambiguous { from, event }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in VehicleState::ALL {
            assert_eq!(VehicleState::parse(s.as_str()).unwrap(), *s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()).unwrap(), *e);
            assert_eq!(serde_json::to_string(e).unwrap(), format!("\"{e}\""));
        }
        assert!(VehicleState::parse("unknown").is_err());
        assert!(EventType::parse("TRIP_START").is_err());
    }

    #[test]
    fn steps_name_the_state_after_each_event_type() {
        let path = Mode::CarShare
            .steps(
                VehicleState::OnTrip,
                &[EventType::TripStop, EventType::TripEnd],
                VehicleState::Available,
            )
            .unwrap();
        assert_eq!(
            path,
            vec![
                (EventType::TripStop, VehicleState::Stopped),
                (EventType::TripEnd, VehicleState::Available)
            ]
        );
        let one = Mode::Micromobility
            .steps(
                VehicleState::OnTrip,
                &[EventType::TripEnd],
                VehicleState::Available,
            )
            .unwrap();
        assert_eq!(one, vec![(EventType::TripEnd, VehicleState::Available)]);
        assert!(
            Mode::Micromobility
                .steps(
                    VehicleState::Available,
                    &[EventType::TripEnd],
                    VehicleState::Available
                )
                .is_err()
        );
    }

    #[test]
    fn micromobility_uses_the_eight_mds_states() {
        let states = Mode::Micromobility.states();
        assert_eq!(states.len(), 8, "{states:?}");
        assert!(!states.contains(&VehicleState::Stopped));
        let car = Mode::CarShare.states();
        assert!(car.contains(&VehicleState::Stopped));
        assert!(!car.contains(&VehicleState::Missing));
    }

    #[test]
    fn multi_type_event_discards_intermediate_state() {
        // The spec's own example: [trip_end, battery_low] takes on_trip through available to non_operational.
        let m = Mode::Micromobility;
        assert_eq!(
            m.apply_events(S::OnTrip, &[E::TripEnd, E::BatteryLow], S::NonOperational),
            Ok(S::NonOperational)
        );
        assert_eq!(
            m.apply_events(S::OnTrip, &[], S::Available),
            Err(IllegalTransition::NoEvents)
        );
        assert!(matches!(
            m.apply_events(
                S::NonContactable,
                &[E::CommsRestored, E::TripEnd],
                S::Available
            ),
            Err(IllegalTransition::Ambiguous { .. })
        ));
        assert!(matches!(
            m.apply_events(
                S::Available,
                &[E::TripEnd, E::BatteryLow],
                S::NonOperational
            ),
            Err(IllegalTransition::NotInTable { .. })
        ));
    }

    #[test]
    fn error_message_names_the_transition() {
        let err = Mode::Micromobility
            .transition(S::Removed, E::TripStart, S::OnTrip)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "micromobility vehicles cannot go from removed to on_trip on trip_start"
        );
    }
}
