//! Cities: the operating areas.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// Cities: the operating areas.
#[async_trait::async_trait]
pub trait CityStore: Send + Sync {
    /// Creates or replaces a city.
    async fn put_city(&self, city: &City, now: TimestampMs) -> Result<(), StoreError>;

    /// One city.
    async fn city(&self, id: &CityId) -> Result<Option<City>, StoreError>;

    /// All cities, by id.
    async fn cities(&self) -> Result<Vec<City>, StoreError>;
}
