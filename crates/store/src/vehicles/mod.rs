//! The vehicle registry, its MDS state changes and their event log.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// The vehicle registry, its MDS state changes and their event log.
#[async_trait::async_trait]
pub trait VehicleStore: Send + Sync {
    /// Registers a new vehicle with the SHA-256 (hex) of its device secret. Fails with
    /// `AlreadyExists` or `MissingReference` (unknown city).
    async fn insert_vehicle(
        &self,
        vehicle: &Vehicle,
        device_secret_sha256: &str,
    ) -> Result<(), StoreError>;

    /// Registers many vehicles (each with its secret's SHA-256) in one transaction: all or none.
    async fn insert_vehicles(&self, vehicles: &[(Vehicle, String)]) -> Result<(), StoreError>;

    /// The SHA-256 (hex) of a vehicle's device secret, if the vehicle exists and has one.
    async fn device_secret_sha256(&self, id: &VehicleId) -> Result<Option<String>, StoreError>;

    /// A page of all vehicles of all cities, ordered by id (for loading live state at start).
    async fn all_vehicles(
        &self,
        after: Option<&VehicleId>,
        limit: u32,
    ) -> Result<Vec<Vehicle>, StoreError>;

    /// One vehicle.
    async fn vehicle(&self, id: &VehicleId) -> Result<Option<Vehicle>, StoreError>;

    /// A page of a city's vehicles ordered by id, starting after `after`. `limit` is capped at
    /// [`PAGE_LIMIT_MAX`].
    async fn vehicles(
        &self,
        city: &CityId,
        after: Option<&VehicleId>,
        limit: u32,
    ) -> Result<Vec<Vehicle>, StoreError>;

    /// Atomically applies a state change decided from `change.from_version` and appends it to the
    /// event log. Fails with `VersionConflict` if the vehicle moved on, `NotFound` if it is unknown.
    async fn record_state_change(&self, change: &StateChange) -> Result<Vehicle, StoreError>;

    /// [`VehicleStore::record_state_change`] for many changes in one transaction: all apply or none
    /// (the first conflict or unknown vehicle fails the batch). Returns the vehicles in order.
    async fn record_state_changes(
        &self,
        changes: &[StateChange],
    ) -> Result<Vec<Vehicle>, StoreError>;

    /// The most recent events of a vehicle, newest first.
    async fn vehicle_events(
        &self,
        id: &VehicleId,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of a city's vehicles with `from <= at < to` and `seq > after_seq`, in `seq` order.
    async fn city_events(
        &self,
        city: &CityId,
        from: TimestampMs,
        to: TimestampMs,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// A page of a city's vehicles (by id, after `after`), each with the event that produced its
    /// current version (none for a vehicle never changed since registration).
    async fn vehicles_with_last_event(
        &self,
        city: &CityId,
        after: Option<&VehicleId>,
        limit: u32,
    ) -> Result<Vec<(Vehicle, Option<RecordedEvent>)>, StoreError>;
}
