//! Vehicle commands: stored, sent over the vehicle channel, resolved by the vehicle's
//! acknowledgement or by the deadline.
//!
//! A command is `pending` until one of: the vehicle acks (`acked`) or refuses (`failed`) before
//! the deadline, or the deadline passes (`timed_out`, set by a sweeper and also enforced when an
//! ack arrives). The store's compare-and-set makes the first decision the only one. An ack
//! after the deadline never turns a time-out into success (see `mobility_core::command::on_ack`);
//! it is noted as `late_ack_at_ms`.
//!
//! Wire format, platform → vehicle on `v1/vehicles/{id}/commands`:
//! `{"id":"…","deadline_ms":…,"command":"set_speed_limit","speed_limit_kmh":15}`;
//! vehicle → platform on `…/commands/ack`: `{"id":"…","status":"ok"|"failed","detail":"…"}`.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use mobility_core::{
    AckOutcome, AckStatus, CommandKind, CommandState, TimestampMs, VehicleId, command::on_ack,
};
use mobility_store::{CommandRecord, Store, StoreError};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::oneshot;

/// Sends a command payload to a vehicle.
#[async_trait]
pub trait CommandChannel: Send + Sync + 'static {
    /// Publishes to the vehicle's commands topic.
    async fn publish(&self, vehicle: &VehicleId, payload: Bytes) -> Result<(), String>;
}

/// How often a waiter asks the store whether another process decided its command.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Commands in flight and their waiters.
pub struct Commands {
    store: Arc<dyn Store>,
    channel: OnceLock<Arc<dyn CommandChannel>>,
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<CommandRecord>>>>,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands").finish_non_exhaustive()
    }
}

/// A command could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No vehicle channel is attached yet.
    #[error("the vehicle channel is not running")]
    NoChannel,
}

#[derive(Debug, Deserialize)]
struct Ack {
    id: String,
    status: String,
    detail: Option<String>,
}

/// Longest failure detail kept from a vehicle.
const DETAIL_CHARS_MAX: usize = 500;

impl Commands {
    /// Commands over `store`; attach the channel once it runs.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            channel: OnceLock::new(),
            waiters: Mutex::new(HashMap::new()),
        }
    }

    /// Connects the vehicle channel (once).
    pub fn attach(&self, channel: Arc<dyn CommandChannel>) {
        let _ = self.channel.set(channel);
    }

    /// Records and sends a command; returns the pending (or, if sending failed, failed) record.
    pub async fn send(
        &self,
        vehicle: VehicleId,
        kind: CommandKind,
        timeout_ms: i64,
        now: TimestampMs,
    ) -> Result<CommandRecord, CommandError> {
        let channel = self.channel.get().ok_or(CommandError::NoChannel)?.clone();
        let mut record = CommandRecord {
            id: uuid::Uuid::now_v7().to_string(),
            vehicle_id: vehicle,
            kind,
            state: CommandState::Pending,
            detail: None,
            created_at: now,
            deadline: now.plus_ms(timeout_ms),
            finished_at: None,
            late_ack_at: None,
        };
        self.store.insert_command(&record).await?;
        let mut body = serde_json::to_value(kind).unwrap_or_default();
        if let Some(o) = body.as_object_mut() {
            o.insert("id".into(), record.id.clone().into());
            o.insert("deadline_ms".into(), record.deadline.0.into());
        }
        metrics::counter!("commands_sent_total", "command" => kind.name()).increment(1);
        if let Err(e) = channel
            .publish(&vehicle, Bytes::from(body.to_string()))
            .await
        {
            let detail = format!("could not publish: {e}");
            if self
                .store
                .resolve_command(&record.id, CommandState::Failed, Some(&detail), now)
                .await?
            {
                record.state = CommandState::Failed;
                record.detail = Some(detail);
                record.finished_at = Some(now);
            }
        }
        Ok(record)
    }

    /// Waits (at most `until`) for the command to be decided; returns its latest record.
    pub async fn wait(
        &self,
        id: &str,
        until: Duration,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .entry(id.to_owned())
            .or_default()
            .push(tx);
        // It may have been decided before the waiter was registered.
        match self.store.command(id).await? {
            Some(c) if c.state.is_final() => {
                self.waiters.lock().remove(id);
                return Ok(Some(c));
            }
            None => return Ok(None),
            Some(_) => {}
        }
        // Woken by this process's decision (the ack came here, or the time-out job ran here),
        // and meanwhile the store is asked every WAIT_POLL: with several processes the
        // vehicle's ack may reach another one, which decides the command in the store.
        let deadline = tokio::time::Instant::now() + until;
        let mut rx = Some(rx);
        loop {
            let poll = (tokio::time::Instant::now() + WAIT_POLL).min(deadline);
            if let Some(waiting) = rx.as_mut() {
                tokio::select! {
                    decided = waiting => {
                        if let Ok(c) = decided {
                            return Ok(Some(c));
                        }
                        // The sender went (the waiters were cleared): only the store now.
                        rx = None;
                    }
                    () = tokio::time::sleep_until(poll) => {}
                }
            } else {
                tokio::time::sleep_until(poll).await;
            }
            let now = self.store.command(id).await?;
            if now.as_ref().is_none_or(|c| c.state.is_final())
                || tokio::time::Instant::now() >= deadline
            {
                self.waiters.lock().remove(id);
                return Ok(now);
            }
        }
    }

    async fn notify(&self, id: &str) {
        let waiting = self.waiters.lock().remove(id);
        if let Some(waiting) = waiting
            && let Ok(Some(record)) = self.store.command(id).await
        {
            for w in waiting {
                let _ = w.send(record.clone());
            }
        }
    }

    /// Handles an acknowledgement a vehicle published.
    pub async fn on_ack(&self, vehicle: VehicleId, payload: &[u8], now: TimestampMs) {
        let outcome = self.handle_ack(vehicle, payload, now).await;
        metrics::counter!("command_acks_total", "outcome" => outcome).increment(1);
    }

    async fn handle_ack(
        &self,
        vehicle: VehicleId,
        payload: &[u8],
        now: TimestampMs,
    ) -> &'static str {
        let Ok(ack) = serde_json::from_slice::<Ack>(payload) else {
            return "malformed";
        };
        let status = match ack.status.as_str() {
            "ok" => AckStatus::Ok,
            "failed" => AckStatus::Failed,
            _ => return "malformed",
        };
        let command = match self.store.command(&ack.id).await {
            Ok(Some(c)) if c.vehicle_id == vehicle => c,
            // Unknown, or another vehicle's command: a vehicle only answers for itself.
            Ok(_) => return "unknown_command",
            Err(e) => {
                tracing::warn!(error = %e, "cannot load a command for its ack");
                return "error";
            }
        };
        let detail: Option<String> = ack
            .detail
            .map(|d| d.chars().take(DETAIL_CHARS_MAX).collect());
        match on_ack(command.state, command.deadline, status, now) {
            AckOutcome::Resolve(to) => {
                match self
                    .store
                    .resolve_command(&command.id, to, detail.as_deref(), now)
                    .await
                {
                    Ok(true) => {
                        self.notify(&command.id).await;
                        if to == CommandState::Acked {
                            "acked"
                        } else {
                            "failed"
                        }
                    }
                    // The sweeper got there first: this answer is late after all.
                    Ok(false) => {
                        let _ = self.store.note_late_ack(&command.id, now).await;
                        "late"
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot record a command ack");
                        "error"
                    }
                }
            }
            AckOutcome::Late => {
                if command.state == CommandState::Pending {
                    // Past its deadline but not yet swept: time it out now, then note the ack.
                    let _ = self
                        .store
                        .resolve_command(
                            &command.id,
                            CommandState::TimedOut,
                            None,
                            command.deadline,
                        )
                        .await;
                    self.notify(&command.id).await;
                }
                let _ = self.store.note_late_ack(&command.id, now).await;
                "late"
            }
            AckOutcome::Ignore => "repeat",
        }
    }

    /// Times out overdue commands and wakes their waiters.
    pub async fn expire(&self, now: TimestampMs) {
        match self.store.expire_commands(now).await {
            Ok(ids) => {
                for id in ids {
                    metrics::counter!("commands_timed_out_total").increment(1);
                    self.notify(&id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot expire commands"),
        }
    }
}
