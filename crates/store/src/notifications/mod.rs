//! The notification outbox and riders' preferences.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// The notification outbox and riders' preferences.
#[async_trait::async_trait]
pub trait NotificationStore: Send + Sync {
    /// Writes a message to the outbox; `false` (and nothing written) if its event key exists.
    async fn enqueue_notification(&self, m: &OutboxMessage) -> Result<bool, StoreError>;

    /// Pending messages due by `now`, oldest first.
    async fn due_notifications(
        &self,
        now: TimestampMs,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Records a delivery attempt: `sent`, `failed` (given up) or `pending` again at `next`.
    async fn finish_notification(
        &self,
        id: &str,
        state: &str,
        next: TimestampMs,
        error: Option<&str>,
        now: TimestampMs,
    ) -> Result<(), StoreError>;

    /// A message by event key.
    async fn notification(&self, event_key: &str) -> Result<Option<OutboxMessage>, StoreError>;

    /// Sets a rider's preference for a channel.
    async fn set_notification_preference(
        &self,
        user_id: &str,
        pref: &NotificationPreference,
    ) -> Result<(), StoreError>;

    /// A rider's preferences.
    async fn notification_preferences(
        &self,
        user_id: &str,
    ) -> Result<Vec<NotificationPreference>, StoreError>;
}
