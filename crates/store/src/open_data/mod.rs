//! What the open-data feeds keep beyond the registry: MDS agency tokens and GBFS alerts.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// What the open-data feeds keep beyond the registry: MDS agency tokens and GBFS alerts.
#[async_trait::async_trait]
pub trait OpenDataStore: Send + Sync {
    /// Stores a newly issued MDS token.
    async fn insert_mds_token(&self, token: &MdsToken) -> Result<(), StoreError>;

    /// One MDS token.
    async fn mds_token(&self, id: &str) -> Result<Option<MdsToken>, StoreError>;

    /// Every MDS token, newest first.
    async fn mds_tokens(&self) -> Result<Vec<MdsToken>, StoreError>;

    /// Revokes an MDS token; false if there is no such token.
    async fn revoke_mds_token(&self, id: &str, at: TimestampMs) -> Result<bool, StoreError>;

    /// Creates or replaces an alert.
    async fn put_alert(&self, alert: &AlertRecord) -> Result<(), StoreError>;

    /// A city's alerts.
    async fn alerts(&self, city: &CityId) -> Result<Vec<AlertRecord>, StoreError>;

    /// Deletes an alert; its city, if it existed.
    async fn delete_alert(&self, id: &str) -> Result<Option<CityId>, StoreError>;
}
