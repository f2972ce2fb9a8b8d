//! Bookings: reservations and trips, moved by compare-and-set.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// Bookings: reservations and trips, moved by compare-and-set.
#[async_trait::async_trait]
pub trait BookingStore: Send + Sync {
    /// Stores a new booking. Fails with `AlreadyExists` when the vehicle or the rider already has
    /// an active booking (decided by the database, so concurrent attempts cannot both win).
    async fn insert_booking(&self, booking: &BookingRecord) -> Result<(), StoreError>;

    /// A booking by id.
    async fn booking(&self, id: &str) -> Result<Option<BookingRecord>, StoreError>;

    /// Moves a booking from `from` to `to` if it is still in `from` (compare-and-set). Returns
    /// the booking after the change, or `None` if it was not in `from`.
    async fn transition_booking(
        &self,
        id: &str,
        from: &str,
        to: &str,
        now: TimestampMs,
    ) -> Result<Option<BookingRecord>, StoreError> {
        self.update_booking(id, from, to, &TripFacts::default(), now)
            .await
    }

    /// Like [`BookingStore::transition_booking`], also setting the trip facts given (`Some`); facts
    /// already set are kept.
    async fn update_booking(
        &self,
        id: &str,
        from: &str,
        to: &str,
        facts: &TripFacts,
        now: TimestampMs,
    ) -> Result<Option<BookingRecord>, StoreError>;

    /// Expires reserved bookings whose hold lapsed by `now`; returns them (now `expired`).
    async fn expire_holds(&self, now: TimestampMs) -> Result<Vec<BookingRecord>, StoreError>;

    /// Bookings of a city whose trip started before `to` and had not ended before `from`.
    async fn trips_between(
        &self,
        city: &CityId,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Vec<BookingRecord>, StoreError>;

    /// Bookings matching a filter, newest first.
    async fn list_bookings(&self, filter: &BookingFilter)
    -> Result<Vec<BookingRecord>, StoreError>;
}
