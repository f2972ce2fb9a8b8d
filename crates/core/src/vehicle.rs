//! Vehicles: their types and the state they are in.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{
    CityId, ParseError, TimestampMs, VehicleId,
    state_machine::{EventType, IllegalTransition, Mode, VehicleState},
};

/// What kind of vehicle it is. Determines its MDS mode and its GBFS/MDS form factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VehicleType {
    /// Standing e-scooter.
    Scooter,
    /// Pedal-assist electric bicycle.
    Ebike,
    /// Electric car.
    Car,
    /// Electric van.
    Van,
}

impl VehicleType {
    /// All types.
    pub const ALL: &'static [Self] = &[Self::Scooter, Self::Ebike, Self::Car, Self::Van];

    /// Our name for it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scooter => "scooter",
            Self::Ebike => "ebike",
            Self::Car => "car",
            Self::Van => "van",
        }
    }

    /// Parses our name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                ParseError::new(
                    "vehicle type",
                    format!("{s:?} is not one of scooter, ebike, car, van"),
                )
            })
    }

    /// The MDS mode (and so the state machine) the vehicle runs under.
    #[must_use]
    pub const fn mode(self) -> Mode {
        match self {
            Self::Scooter | Self::Ebike => Mode::Micromobility,
            Self::Car | Self::Van => Mode::CarShare,
        }
    }

    /// MDS `vehicle_type` (the same words as GBFS `form_factor`). MDS has no van; a van is a car.
    #[must_use]
    pub const fn mds_vehicle_type(self) -> &'static str {
        match self {
            Self::Scooter => "scooter_standing",
            Self::Ebike => "bicycle",
            Self::Car | Self::Van => "car",
        }
    }

    /// MDS/GBFS `propulsion_type`.
    #[must_use]
    pub const fn propulsion(self) -> &'static str {
        match self {
            Self::Ebike => "electric_assist",
            Self::Scooter | Self::Car | Self::Van => "electric",
        }
    }
}

impl fmt::Display for VehicleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vehicle in the registry with its current MDS state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vehicle {
    /// Platform id (MDS `device_id`).
    pub id: VehicleId,
    /// The city it operates in.
    pub city: CityId,
    /// Its type.
    pub vehicle_type: VehicleType,
    /// Current MDS state.
    pub state: VehicleState,
    /// Increases by one with every applied state change; used for optimistic concurrency.
    pub version: u64,
    /// When the state last changed (or the vehicle was registered).
    pub updated_at: TimestampMs,
}

/// The most event types one MDS event may carry. Bounds work done per event.
pub const EVENT_TYPES_MAX: usize = 8;

/// A state change the state machine accepted, ready to be recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    /// The vehicle.
    pub vehicle_id: VehicleId,
    /// Version the change was computed from; a store applies it only if the vehicle is still there.
    pub from_version: u64,
    /// State before.
    pub from: VehicleState,
    /// State after.
    pub to: VehicleState,
    /// Ordered MDS event types.
    pub events: Vec<EventType>,
    /// When it happened.
    pub at: TimestampMs,
    /// Where the vehicle was, when known (MDS events carry a location). Set by the caller, who
    /// knows the live position; [`Vehicle::decide`] leaves it empty.
    #[serde(default)]
    pub location: Option<crate::LatLon>,
    /// The booking (MDS trip) the change belongs to, for reservation and trip events.
    #[serde(default)]
    pub trip_id: Option<String>,
    /// An event older than the vehicle's current state: recorded in the event log (MDS accepts
    /// events out of order) but not applied, because the current state is newer news.
    #[serde(default)]
    pub late: bool,
}

impl StateChange {
    /// The same change, recorded with where the vehicle was and the trip it belongs to.
    #[must_use]
    pub fn with_context(
        mut self,
        location: Option<crate::LatLon>,
        trip_id: Option<String>,
    ) -> Self {
        self.location = location;
        self.trip_id = trip_id;
        self
    }
}

impl Vehicle {
    /// A newly registered vehicle: MDS `removed` (in the depot) until it is dropped off.
    #[must_use]
    pub fn registered(
        id: VehicleId,
        city: CityId,
        vehicle_type: VehicleType,
        now: TimestampMs,
    ) -> Self {
        Self {
            id,
            city,
            vehicle_type,
            state: VehicleState::Removed,
            version: 0,
            updated_at: now,
        }
    }

    /// Checks an MDS event against the vehicle's state machine and returns the change to record.
    pub fn decide(
        &self,
        events: &[EventType],
        to: VehicleState,
        at: TimestampMs,
    ) -> Result<StateChange, IllegalTransition> {
        if events.len() > EVENT_TYPES_MAX {
            return Err(IllegalTransition::TooManyEvents {
                count: events.len(),
                max: EVENT_TYPES_MAX,
            });
        }
        self.vehicle_type
            .mode()
            .apply_events(self.state, events, to)?;
        Ok(StateChange {
            vehicle_id: self.id,
            from_version: self.version,
            from: self.state,
            to,
            events: events.to_vec(),
            at,
            location: None,
            trip_id: None,
            late: false,
        })
    }

    /// Checks an event that happened before the vehicle's current state (`at` older than
    /// [`Vehicle::updated_at`]): MDS says such events are accepted without enforcing the prior
    /// state, so it is legal when its types lead to `to` from some state of the mode. The
    /// change is marked `late`: recorded, not applied.
    pub fn decide_late(
        &self,
        events: &[EventType],
        to: VehicleState,
        at: TimestampMs,
    ) -> Result<StateChange, IllegalTransition> {
        if events.len() > EVENT_TYPES_MAX {
            return Err(IllegalTransition::TooManyEvents {
                count: events.len(),
                max: EVENT_TYPES_MAX,
            });
        }
        if events.is_empty() {
            return Err(IllegalTransition::NoEvents);
        }
        let mode = self.vehicle_type.mode();
        let from = mode
            .states()
            .into_iter()
            .find(|s| mode.apply_events(*s, events, to).is_ok())
            .ok_or_else(|| IllegalTransition::Unreachable {
                mode,
                events: events
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                to,
            })?;
        Ok(StateChange {
            vehicle_id: self.id,
            from_version: self.version,
            from,
            to,
            events: events.to_vec(),
            at,
            location: None,
            trip_id: None,
            late: true,
        })
    }

    /// The vehicle after `change` (which must have been decided from this version).
    #[must_use]
    pub fn with_change(mut self, change: &StateChange) -> Self {
        debug_assert_eq!(change.vehicle_id, self.id);
        debug_assert_eq!(change.from_version, self.version);
        self.state = change.to;
        self.version += 1;
        self.updated_at = self.updated_at.max(change.at);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn scooter() -> Vehicle {
        Vehicle::registered(
            VehicleId::from_uuid(Uuid::from_u128(1)),
            CityId::parse("barcelona").unwrap(),
            VehicleType::Scooter,
            TimestampMs(1_000),
        )
    }

    #[test]
    fn late_events_are_legal_from_some_state_and_change_nothing() {
        let v = scooter();
        let late = v
            .decide_late(
                &[EventType::TripEnd],
                VehicleState::Available,
                TimestampMs(500),
            )
            .unwrap();
        assert!(late.late);
        assert_eq!(
            late.from,
            VehicleState::OnTrip,
            "the state it must have come from"
        );
        assert_eq!(late.from_version, v.version);
        assert!(matches!(
            v.decide_late(
                &[EventType::TripEnd],
                VehicleState::Reserved,
                TimestampMs(500)
            ),
            Err(IllegalTransition::Unreachable { .. })
        ));
        assert!(matches!(
            v.decide_late(&[], VehicleState::Available, TimestampMs(500)),
            Err(IllegalTransition::NoEvents)
        ));
    }

    #[test]
    fn registered_vehicle_is_removed_until_dropped_off() {
        let v = scooter();
        assert_eq!(v.state, VehicleState::Removed);
        let change = v
            .decide(
                &[EventType::ProviderDropOff],
                VehicleState::Available,
                TimestampMs(2_000),
            )
            .unwrap();
        let v = v.with_change(&change);
        assert_eq!(v.state, VehicleState::Available);
        assert_eq!(v.version, 1);
        assert_eq!(v.updated_at, TimestampMs(2_000));
        assert!(
            v.decide(
                &[EventType::TripEnd],
                VehicleState::Available,
                TimestampMs(3_000)
            )
            .is_err()
        );
    }

    #[test]
    fn cars_follow_the_car_share_machine() {
        let car = Vehicle {
            vehicle_type: VehicleType::Car,
            ..scooter()
        };
        // Micromobility drop-off does not exist for car share...
        assert!(
            car.decide(
                &[EventType::ProviderDropOff],
                VehicleState::Available,
                TimestampMs(1)
            )
            .is_err()
        );
        // ...a car comes back into the fleet through recommissioning.
        assert!(
            car.decide(
                &[EventType::Recommission],
                VehicleState::NonOperational,
                TimestampMs(1)
            )
            .is_ok()
        );
    }

    #[test]
    fn too_many_event_types_are_refused() {
        let events = vec![EventType::Located; EVENT_TYPES_MAX + 1];
        assert!(
            scooter()
                .decide(&events, VehicleState::Available, TimestampMs(1))
                .is_err()
        );
    }

    #[test]
    fn type_names() {
        for t in VehicleType::ALL {
            assert_eq!(VehicleType::parse(t.as_str()).unwrap(), *t);
        }
        assert!(VehicleType::parse("bus").is_err());
        assert_eq!(VehicleType::Van.mds_vehicle_type(), "car");
        assert_eq!(VehicleType::Ebike.propulsion(), "electric_assist");
    }
}
