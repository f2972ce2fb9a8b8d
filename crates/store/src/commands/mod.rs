//! Vehicle commands, decided once.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// Vehicle commands, decided once.
#[async_trait::async_trait]
pub trait CommandStore: Send + Sync {
    /// Stores a new (pending) command.
    async fn insert_command(&self, command: &CommandRecord) -> Result<(), StoreError>;

    /// One command.
    async fn command(&self, id: &str) -> Result<Option<CommandRecord>, StoreError>;

    /// Moves a command from `pending` to `to` (acked, failed or timed out); false if it was no
    /// longer pending (so two deciders never both win).
    async fn resolve_command(
        &self,
        id: &str,
        to: CommandState,
        detail: Option<&str>,
        at: TimestampMs,
    ) -> Result<bool, StoreError>;

    /// Notes an acknowledgement that came after the command had timed out.
    async fn note_late_ack(&self, id: &str, at: TimestampMs) -> Result<(), StoreError>;

    /// Times out every pending command whose deadline is before `now`; returns their ids.
    async fn expire_commands(&self, now: TimestampMs) -> Result<Vec<String>, StoreError>;

    /// A vehicle's most recent commands, newest first.
    async fn vehicle_commands(
        &self,
        vehicle: &VehicleId,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError>;
}
