//! Bookings: a rider reserves a rentable vehicle, which is then held for them until they unlock
//! it, cancel, or the hold lapses. The database decides races (one active booking per vehicle
//! and per rider); each step is also an MDS lifecycle event of the vehicle.

use std::sync::Arc;

use mobility_core::{EventType, TimestampMs, VehicleId, VehicleState, VehicleType};
use mobility_store::{BookingRecord, Store, StoreError};

use crate::fleet::Fleet;

/// Least battery for a scooter or e-bike to be reserved, percent.
pub const MICRO_MIN_BATTERY: u8 = 15;
/// Least battery (charge) for a car or van to be reserved, percent.
pub const CAR_MIN_BATTERY: u8 = 20;

/// Why a reservation or a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    /// No such vehicle.
    #[error("no vehicle {0}")]
    UnknownVehicle(VehicleId),
    /// The vehicle cannot be rented now.
    #[error("the vehicle cannot be reserved: {0}")]
    Unavailable(String),
    /// Cars and vans need a verified driving licence.
    #[error("cars and vans can be booked only with a verified driving licence")]
    LicenceRequired,
    /// The vehicle or the rider already has an active booking.
    #[error("the vehicle is already booked, or you already have an active booking")]
    Conflict,
    /// The booking is not in a state that allows this.
    #[error("the booking is {0}")]
    WrongState(String),
    /// No such booking (or not the caller's).
    #[error("no such booking")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn micromobility(t: VehicleType) -> bool {
    matches!(t, VehicleType::Scooter | VehicleType::Ebike)
}

/// The MDS events that end a hold (the vehicle becomes available again).
fn release_events(t: VehicleType, by_rider: bool) -> Vec<EventType> {
    if micromobility(t) {
        vec![EventType::ReservationCancel]
    } else if by_rider {
        vec![EventType::CustomerCancellation]
    } else {
        vec![EventType::ProviderCancellation]
    }
}

/// The booking service.
#[derive(Debug)]
pub struct Bookings {
    store: Arc<dyn Store>,
    fleet: Arc<Fleet>,
    hold_ms: i64,
}

impl Bookings {
    /// Bookings holding vehicles for `hold_s` seconds.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, fleet: Arc<Fleet>, hold_s: u64) -> Self {
        Self {
            store,
            fleet,
            hold_ms: i64::try_from(hold_s.saturating_mul(1_000)).unwrap_or(i64::MAX),
        }
    }

    /// Records an MDS change of the vehicle (re-deciding on a concurrent change) and mirrors it
    /// in the live index.
    async fn change_vehicle(
        &self,
        id: &VehicleId,
        events: &[EventType],
        to: VehicleState,
        now: TimestampMs,
    ) -> Result<bool, StoreError> {
        for _ in 0..3 {
            let Some(v) = self.store.vehicle(id).await? else {
                return Ok(false);
            };
            let Ok(change) = v.decide(events, to, now) else {
                return Ok(false);
            };
            match self.store.record_state_change(&change).await {
                Ok(v) => {
                    self.fleet.set_state(id, v.state);
                    return Ok(true);
                }
                Err(StoreError::VersionConflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Reserves a vehicle for a rider.
    pub async fn reserve(
        &self,
        user_id: &str,
        vehicle: VehicleId,
        now: TimestampMs,
    ) -> Result<BookingRecord, BookingError> {
        let (city, view) = self
            .fleet
            .vehicle(&vehicle)
            .ok_or(BookingError::UnknownVehicle(vehicle))?;
        if !micromobility(view.vehicle_type) {
            // Until KYC verifies licences, no account has one.
            return Err(BookingError::LicenceRequired);
        }
        if view.state != VehicleState::Available {
            return Err(BookingError::Unavailable(format!(
                "it is {}",
                view.state.as_str()
            )));
        }
        let min = if micromobility(view.vehicle_type) {
            MICRO_MIN_BATTERY
        } else {
            CAR_MIN_BATTERY
        };
        match view.battery {
            Some(b) if b.get() >= min => {}
            Some(b) => {
                return Err(BookingError::Unavailable(format!(
                    "its battery is at {} % (at least {min} % is needed)",
                    b.get()
                )));
            }
            None => return Err(BookingError::Unavailable("its battery is unknown".into())),
        }
        let booking = BookingRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.to_owned(),
            vehicle_id: vehicle,
            city,
            state: "reserved".into(),
            created_at: now,
            hold_until: now.plus_ms(self.hold_ms),
            updated_at: now,
        };
        match self.store.insert_booking(&booking).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists(_)) => return Err(BookingError::Conflict),
            Err(e) => return Err(e.into()),
        }
        if !self
            .change_vehicle(
                &vehicle,
                &[EventType::ReservationStart],
                VehicleState::Reserved,
                now,
            )
            .await?
        {
            // The vehicle changed under us (taken out of service, say): give the hold back.
            self.store
                .transition_booking(&booking.id, "reserved", "cancelled", now)
                .await?;
            return Err(BookingError::Unavailable("it just changed state".into()));
        }
        metrics::counter!("bookings_total", "outcome" => "reserved").increment(1);
        Ok(booking)
    }

    /// A rider's booking (`None` if it does not exist or is someone else's, unless `any`).
    pub async fn get(
        &self,
        id: &str,
        user_id: Option<&str>,
    ) -> Result<BookingRecord, BookingError> {
        match self.store.booking(id).await? {
            Some(b) if user_id.is_none_or(|u| u == b.user_id) => Ok(b),
            _ => Err(BookingError::NotFound),
        }
    }

    /// The rider cancels a reservation; the vehicle becomes available.
    pub async fn cancel(
        &self,
        id: &str,
        user_id: Option<&str>,
        now: TimestampMs,
    ) -> Result<BookingRecord, BookingError> {
        let b = self.get(id, user_id).await?;
        let Some(done) = self
            .store
            .transition_booking(&b.id, "reserved", "cancelled", now)
            .await?
        else {
            let current = self.get(id, user_id).await?;
            return Err(BookingError::WrongState(current.state));
        };
        self.release(&done, true, now).await?;
        metrics::counter!("bookings_total", "outcome" => "cancelled").increment(1);
        Ok(done)
    }

    async fn release(
        &self,
        b: &BookingRecord,
        by_rider: bool,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        let t = self
            .fleet
            .vehicle(&b.vehicle_id)
            .map_or(VehicleType::Scooter, |(_, v)| v.vehicle_type);
        self.change_vehicle(
            &b.vehicle_id,
            &release_events(t, by_rider),
            VehicleState::Available,
            now,
        )
        .await?;
        Ok(())
    }

    /// Lets lapsed holds go; returns how many.
    pub async fn expire(&self, now: TimestampMs) -> Result<usize, StoreError> {
        let expired = self.store.expire_holds(now).await?;
        for b in &expired {
            self.release(b, false, now).await?;
            metrics::counter!("bookings_total", "outcome" => "expired").increment(1);
        }
        Ok(expired.len())
    }
}
