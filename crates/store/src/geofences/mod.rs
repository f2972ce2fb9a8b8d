//! Geofences per city.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// Geofences per city.
#[async_trait::async_trait]
pub trait GeofenceStore: Send + Sync {
    /// Creates or replaces a geofence (its city must exist).
    async fn put_geofence(&self, fence: &GeofenceRecord) -> Result<(), StoreError>;

    /// A city's geofences, by id.
    async fn geofences(&self, city: &CityId) -> Result<Vec<GeofenceRecord>, StoreError>;

    /// Deletes a geofence; returns its city if it existed.
    async fn delete_geofence(&self, id: &str) -> Result<Option<CityId>, StoreError>;
}
