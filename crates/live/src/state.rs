//! [`LiveState`]: the fleet with its durability. Ingest goes through here: reports are
//! applied to the in-memory [`Fleet`], written to the [`crate::live_log`] (and, for
//! [`Durability::Synced`], fsync'd) before the call returns, then handed to the
//! [`crate::relay`] for the bus.

use std::sync::Arc;

use mobility_core::{CityId, TimestampMs, VehicleId};
use mobility_fleet::{Reject, Telemetry, Verdict};

use crate::{
    fleet::{CHANGE_BATCHES_BUFFERED, Change, Fleet, FleetEvents, INGEST_BATCH_MAX},
    live_log::{LiveLog, REPLAY_NOW, Recovered},
    relay::Relay,
};

/// When [`LiveState::submit`] returns, relative to the write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the reports are fsync'd: for anything that is acknowledged (HTTP, MQTT QoS 1).
    Synced,
    /// Once they are queued for the log writer (it still applies back-pressure when its queue
    /// is full): for MQTT QoS 0, which nobody acknowledges, so a vehicle's stream is not paced
    /// by group commits. A crash loses at most the last group, as QoS 0 allows.
    Queued,
}

/// The fleet plus its durability: [`LiveState::submit`] applies reports and, for
/// [`Durability::Synced`], returns only after the applied ones are in the write-ahead log.
#[derive(Debug)]
pub struct LiveState {
    /// The in-memory state.
    pub fleet: Arc<Fleet>,
    /// Changes for live views (the WebSocket stream), sent by the [`crate::feed`] as the
    /// telemetry stream brings them.
    pub changes: tokio::sync::broadcast::Sender<Arc<Vec<Change>>>,
    log: LiveLog,
    history_dir: Option<std::path::PathBuf>,
    events: Arc<FleetEvents>,
    relay: Relay,
    /// Held (shared) by each submit from applying its reports until they are queued for the
    /// relay; a snapshot takes it exclusively for a moment, so every report in the segments it
    /// is about to drop has reached the relay before the relay is flushed.
    in_flight: tokio::sync::RwLock<()>,
}

/// How long a snapshot waits for the relay to publish what the covered segments hold; past it,
/// the snapshot is not taken (the log keeps them, and a restart publishes them again).
const SNAPSHOT_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

impl LiveState {
    /// Opens the log in `dir` and replays what it holds into `fleet`.
    pub fn open(
        fleet: Arc<Fleet>,
        dir: &std::path::Path,
        history_dir: Option<&std::path::Path>,
        events: Arc<FleetEvents>,
        relay: Relay,
    ) -> std::io::Result<(Self, Recovered)> {
        let (log, recovered) = LiveLog::open(dir, history_dir)?;
        let state = Self::with_log(fleet, log, &recovered, history_dir, events, relay);
        Ok((state, recovered))
    }

    /// Like [`Self::open`] with the log already opened (at start, the log is read while the
    /// registry loads: they do not depend on each other): replays `recovered` into `fleet`.
    #[must_use]
    pub fn with_log(
        fleet: Arc<Fleet>,
        log: LiveLog,
        recovered: &Recovered,
        history_dir: Option<&std::path::Path>,
        events: Arc<FleetEvents>,
        relay: Relay,
    ) -> Self {
        // Replay restores state only: crossings were reacted to when the reports first came.
        for chunk in recovered.reports.chunks(INGEST_BATCH_MAX * 8) {
            fleet.ingest(chunk, REPLAY_NOW);
        }
        let (changes, _) = tokio::sync::broadcast::channel(CHANGE_BATCHES_BUFFERED);
        Self {
            fleet,
            changes,
            log,
            history_dir: history_dir.map(std::path::Path::to_path_buf),
            events,
            relay,
            in_flight: tokio::sync::RwLock::new(()),
        }
    }

    /// A vehicle's current state as a stream change.
    #[must_use]
    pub fn change_of(&self, id: &VehicleId) -> Option<Change> {
        let (_, v) = self.fleet.vehicle(id)?;
        Change::of(&v)
    }

    /// The geofence events and alerts feed.
    #[must_use]
    pub fn events(&self) -> &Arc<FleetEvents> {
        &self.events
    }

    /// The relay that publishes what ingest accepted to the bus.
    #[must_use]
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Applies reports (in order) and logs them; with [`Durability::Synced`] they are on disk
    /// before it returns.
    pub async fn submit(
        &self,
        reports: &[Telemetry],
        now: TimestampMs,
        durability: Durability,
    ) -> std::io::Result<Vec<Result<Verdict, Reject>>> {
        let _in_flight = self.in_flight.read().await;
        let crate::fleet::Tracked {
            verdicts,
            reactions,
            cities,
        } = self.fleet.ingest_tracked(reports, now);
        // The log keeps every valid report of a known vehicle: applied ones for the live state,
        // late (stale) ones for history, since they are real measurements. Replaying a stale one
        // is a no-op.
        let kept: Vec<&Telemetry> = reports
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| matches!(v, Ok(Verdict::Applied) | Err(Reject::Stale)))
            .map(|(t, _)| t)
            .collect();
        let logged = match durability {
            Durability::Synced => self.log.append(&kept).await,
            Durability::Queued => self.log.append_queued(&kept).await,
        };
        if let Err(e) = logged {
            metrics::counter!("live_log_errors_total").increment(1);
            tracing::error!(error = %e, "cannot persist live state; reports are applied but not durable");
            return Err(e);
        }
        // Durable in the live log: now it happened, so it is published (the relay coalesces
        // batches and never drops one; a full relay slows ingest down instead).
        if !kept.is_empty() || !reactions.is_empty() {
            // Grouped by city as ingest grouped them (no second lookup of each vehicle's city).
            let by_city: Vec<(CityId, Vec<Telemetry>)> = cities
                .into_iter()
                .map(|(city, indices)| {
                    let kept: Vec<Telemetry> = indices
                        .into_iter()
                        .filter(|&i| {
                            matches!(verdicts[i], Ok(Verdict::Applied) | Err(Reject::Stale))
                        })
                        .map(|i| reports[i].clone())
                        .collect();
                    (city, kept)
                })
                .filter(|(_, kept)| !kept.is_empty())
                .collect();
            self.relay.accepted(by_city, reactions, now).await;
        }
        Ok(verdicts)
    }

    /// Deletes raw history last written more than `days` days before `now`.
    pub async fn prune_history(&self, days: u32, now: TimestampMs) -> std::io::Result<usize> {
        let Some(dir) = self.history_dir.clone() else {
            return Ok(0);
        };
        let max_age = std::time::Duration::from_secs(u64::from(days) * 86_400);
        let now = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(now.0).unwrap_or(0));
        tokio::task::spawn_blocking(move || crate::live_log::prune_history(&dir, max_age, now))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Publishes again what recovery replayed from the log's segments (not the snapshot's,
    /// which was published before the snapshot was committed): a crash may have come between
    /// the log's fsync and the relay's publish. Returns how many reports were queued.
    pub async fn republish(&self, reports: &[Telemetry], now: TimestampMs) -> usize {
        let mut by_city: std::collections::BTreeMap<CityId, Vec<Telemetry>> =
            std::collections::BTreeMap::new();
        let mut n = 0;
        for t in reports {
            if let Some(city) = self.fleet.city_of(&t.vehicle_id) {
                by_city.entry(city).or_default().push(t.clone());
                n += 1;
            }
        }
        for (city, reports) in by_city {
            for chunk in reports.chunks(crate::relay::REPORTS_PER_EVENT_MAX) {
                self.relay
                    .accepted(vec![(city.clone(), chunk.to_vec())], Vec::new(), now)
                    .await;
            }
        }
        n
    }

    /// Writes a snapshot of every vehicle's latest report and drops the log it covers, once
    /// the relay has published everything in that log (else it keeps the log and says why).
    pub async fn snapshot(&self) -> std::io::Result<usize> {
        let fleet = self.fleet.clone();
        let settle = async {
            // Every submit that wrote to the segments being covered has queued its reports
            // for the relay once it lets go of this; then the relay publishes them.
            drop(self.in_flight.write().await);
            if self.relay.flush(SNAPSHOT_SETTLE).await {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "the event bus has not taken the accepted telemetry within {} s; the live log keeps it until it does",
                    SNAPSHOT_SETTLE.as_secs()
                )))
            }
        };
        self.log
            .snapshot(settle, move || fleet.latest_reports())
            .await
    }
}
