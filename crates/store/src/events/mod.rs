//! The transactional outbox of domain events (written by the changes themselves).

#[allow(clippy::wildcard_imports)]
use crate::*;

/// The transactional outbox of domain events (written by the changes themselves).
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event to the outbox on its own (a fact with no other row, such as an admin
    /// change). Changes with rows of their own write their events in their own transaction.
    async fn record_event(&self, event: &mobility_core::NewEvent) -> Result<(), StoreError>;

    /// Up to `limit` outbox events after `after_seq`, oldest first.
    async fn outbox_events(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Deletes the outbox events up to and including `through_seq` (they were relayed).
    async fn delete_outbox_events(&self, through_seq: i64) -> Result<u64, StoreError>;
}
