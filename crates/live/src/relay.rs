//! What ingest accepted, on its way to the event bus.
//!
//! - [`Relay`]: accepted telemetry (after the live log made it durable) and the geofence
//!   crossings it caused go into a bounded queue; one task coalesces them into
//!   `telemetry.accepted` events per city and `fleet.*` events and publishes them, retrying
//!   with back-off and never dropping. A full queue slows ingest down (back-pressure) rather
//!   than losing an event.
//! - [`DemandRelay`]: riders' searches (a read endpoint only hands them over) counted per city,
//!   minute and H3 zone, published every second as `demand.searched`.
//!
//! A crash after the live log's fsync and before the relay's publish loses nothing: the live
//! log keeps every segment until a snapshot covers it, a snapshot is committed only after
//! [`Relay::flush`] says everything accepted before it was published
//! ([`crate::state::LiveState::snapshot`]), and at start the reports recovered from the log's
//! segments are published again ([`crate::state::LiveState::republish`]). Consumers see those
//! as duplicates, which the live index ignores (an older or equal timestamp changes nothing).

use std::{sync::Arc, time::Duration};

use mobility_bus::EventBus;
use mobility_core::{CityId, Clock, DomainEvent, NewEvent, TimestampMs};
use mobility_fleet::{
    Telemetry,
    geofence::{Direction, ZoneKind},
};
use tokio::sync::mpsc;

use crate::fleet::Reaction;
/// Batches queued for the relay before ingest waits.
pub const RELAY_QUEUE_MAX: usize = 1_024;
/// Most reports in one `telemetry.accepted` event (well under the bus's event size).
pub const REPORTS_PER_EVENT_MAX: usize = 2_000;
/// How long the relay waits for more before publishing a small batch.
const RELAY_LINGER: Duration = Duration::from_millis(10);
/// Most reports the relay coalesces into one publish.
const RELAY_REPORTS_MAX: usize = 20_000;

enum Item {
    /// Reports by city, the crossings they caused, and when ingest accepted them.
    Accepted(Vec<(CityId, Vec<Telemetry>)>, Vec<Reaction>, TimestampMs),
    /// Answered once everything queued before it is published.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The sending side of the relay.
#[derive(Debug, Clone)]
pub struct Relay {
    tx: mpsc::Sender<Item>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Item")
    }
}

impl Relay {
    /// Starts the relay task publishing to `bus`.
    #[must_use]
    pub fn start(
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(RELAY_QUEUE_MAX);
        let task = tokio::spawn(run_relay(bus, clock, rx));
        (Self { tx }, task)
    }

    /// Queues reports ingest accepted at `at`, by city, and the crossings they caused (waits
    /// while the queue is full). A `telemetry.accepted` event carries, as its time, when the
    /// oldest of its reports was accepted: replicas measure their lag from it.
    pub async fn accepted(
        &self,
        reports: Vec<(CityId, Vec<Telemetry>)>,
        reactions: Vec<Reaction>,
        at: TimestampMs,
    ) {
        if self
            .tx
            .send(Item::Accepted(reports, reactions, at))
            .await
            .is_err()
        {
            metrics::counter!("bus_relay_closed_total").increment(1);
            tracing::error!("the event relay has stopped; accepted telemetry is not published");
        }
    }

    /// Waits (up to `within`) until everything queued before this call is on the bus; false if
    /// it is not by then (the bus is down or slow) or the relay has stopped.
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, wait) = tokio::sync::oneshot::channel();
        tokio::time::timeout(within, async {
            self.tx.send(Item::Flush(done)).await.is_ok() && wait.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// Waits (up to `within`) until everything queued was taken by the relay task.
    pub async fn drain(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.tx.capacity() < self.tx.max_capacity() && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A deterministic id for a crossing, so a retried publish stores it once.
fn crossing_id(r: &Reaction, fence: &str, what: &str) -> uuid::Uuid {
    let key = format!("{}:{}:{fence}:{what}", r.vehicle, r.at.0);
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes())
}

/// The events one batch of crossings is published as.
#[must_use]
pub fn crossing_events(r: &Reaction) -> Vec<NewEvent> {
    let mut out = Vec::new();
    for c in &r.crossings {
        let direction = match c.direction {
            Direction::Enter => "enter",
            Direction::Exit => "exit",
        };
        out.push(NewEvent::new(
            crossing_id(r, &c.fence_id, direction),
            Some(r.city.clone()),
            r.at,
            DomainEvent::GeofenceCrossed {
                vehicle: r.vehicle,
                at: r.at,
                fence_id: c.fence_id.clone(),
                zone: c.kind.name().to_owned(),
                direction: direction.to_owned(),
                speed_limit_kmh: r.speed_limit_kmh,
            },
        ));
        let alert = match (c.kind, c.direction) {
            (ZoneKind::OperatingArea, Direction::Exit) => Some("left_operating_area"),
            (ZoneKind::NoRiding, Direction::Enter) => Some("entered_no_riding_zone"),
            _ => None,
        };
        if let Some(alert) = alert {
            out.push(NewEvent::new(
                crossing_id(r, &c.fence_id, alert),
                Some(r.city.clone()),
                r.at,
                DomainEvent::FleetAlert {
                    vehicle: r.vehicle,
                    at: r.at,
                    alert: alert.to_owned(),
                    fence_id: c.fence_id.clone(),
                    zone: c.kind.name().to_owned(),
                },
            ));
        }
    }
    out
}

async fn run_relay(bus: Arc<dyn EventBus>, clock: Arc<dyn Clock>, mut rx: mpsc::Receiver<Item>) {
    let published = metrics::counter!("bus_relay_reports_total");
    while let Some(first) = rx.recv().await {
        // Under load, wait a moment for more: fewer, larger events and group commits cost
        // ingest less than many small ones (the reports are durable in the live log already).
        if rx.len() < 8 {
            tokio::time::sleep(RELAY_LINGER).await;
        }
        let mut items = vec![first];
        let mut n = 0;
        while n < RELAY_REPORTS_MAX {
            match rx.try_recv() {
                Ok(item) => {
                    if let Item::Accepted(r, _, _) = &item {
                        n += r.iter().map(|(_, r)| r.len()).sum::<usize>();
                    }
                    items.push(item);
                }
                Err(_) => break,
            }
        }
        let mut accepted_at = clock.now();
        let mut by_city: std::collections::BTreeMap<CityId, Vec<Telemetry>> =
            std::collections::BTreeMap::new();
        let mut events = Vec::new();
        let mut reports_n = 0u64;
        let mut flushes = Vec::new();
        for item in items {
            let (reports, reactions) = match item {
                Item::Accepted(reports, reactions, at) => {
                    accepted_at = accepted_at.min(at);
                    (reports, reactions)
                }
                Item::Flush(done) => {
                    flushes.push(done);
                    continue;
                }
            };
            for (city, reports) in reports {
                reports_n += reports.len() as u64;
                by_city.entry(city).or_default().extend(reports);
            }
            for r in &reactions {
                events.extend(crossing_events(r));
            }
        }
        let mut all: Vec<NewEvent> = Vec::with_capacity(events.len() + by_city.len());
        for (city, mut reports) in by_city {
            while !reports.is_empty() {
                let rest = reports.split_off(reports.len().min(REPORTS_PER_EVENT_MAX));
                all.push(NewEvent::new(
                    uuid::Uuid::now_v7(),
                    Some(city.clone()),
                    accepted_at,
                    DomainEvent::TelemetryAccepted { reports },
                ));
                reports = rest;
            }
        }
        all.extend(events);
        let mut backoff = Duration::from_millis(50);
        while !all.is_empty() {
            match bus.publish(&all).await {
                Ok(_) => break,
                Err(e) => {
                    metrics::counter!("bus_relay_errors_total").increment(1);
                    tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "cannot publish accepted telemetry; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        published.increment(reports_n);
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// How often counted searches are published.
pub const DEMAND_FLUSH: Duration = Duration::from_secs(1);
/// Most (city, minute, zone) counts held before a flush is forced.
const DEMAND_CELLS_MAX: usize = 100_000;

type DemandCounts =
    std::collections::HashMap<(CityId, i64), std::collections::HashMap<h3o::CellIndex, (u32, u32)>>;

/// Riders' searches, counted in memory and published every [`DEMAND_FLUSH`].
#[derive(Debug, Default)]
pub struct DemandRelay {
    counts: parking_lot::Mutex<DemandCounts>,
}

impl DemandRelay {
    /// Counts a search at `at` in `city` (found: it returned a vehicle).
    pub fn searched(
        &self,
        city: &CityId,
        at: mobility_core::LatLon,
        found: bool,
        now: TimestampMs,
    ) {
        let Some(cell) = h3o::LatLng::new(at.lat(), at.lon())
            .ok()
            .map(|ll| ll.to_cell(crate::fleet::DEMAND_RESOLUTION))
        else {
            return;
        };
        let minute = now.0.div_euclid(60_000) * 60_000;
        let mut counts = self.counts.lock();
        if counts.len() >= DEMAND_CELLS_MAX {
            metrics::counter!("demand_counts_dropped_total").increment(1);
            return;
        }
        let e = counts
            .entry((city.clone(), minute))
            .or_default()
            .entry(cell)
            .or_default();
        e.0 += 1;
        e.1 += u32::from(!found);
    }

    fn take(&self) -> Vec<NewEvent> {
        let counts = std::mem::take(&mut *self.counts.lock());
        let mut out: Vec<NewEvent> = counts
            .into_iter()
            .map(|((city, minute), cells)| {
                let mut cells: Vec<mobility_core::SearchCount> = cells
                    .into_iter()
                    .map(|(cell, (searches, unmet))| mobility_core::SearchCount {
                        cell: cell.to_string(),
                        searches,
                        unmet,
                    })
                    .collect();
                cells.sort_by(|a, b| a.cell.cmp(&b.cell));
                NewEvent::new(
                    uuid::Uuid::now_v7(),
                    Some(city),
                    TimestampMs(minute),
                    DomainEvent::RidersSearched {
                        minute: TimestampMs(minute),
                        cells,
                    },
                )
            })
            .collect();
        out.sort_by_key(|e| e.at);
        out
    }

    /// Publishes the counts every [`DEMAND_FLUSH`] until `stop`, then once more.
    pub async fn run(
        self: Arc<Self>,
        bus: Arc<dyn EventBus>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(DEMAND_FLUSH);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.changed() => true,
            };
            let events = self.take();
            if !events.is_empty() {
                let mut backoff = Duration::from_millis(50);
                for attempt in 0..20 {
                    match bus.publish(&events).await {
                        Ok(_) => break,
                        Err(e) => {
                            metrics::counter!("bus_relay_errors_total").increment(1);
                            tracing::warn!(error = %e, attempt, "cannot publish riders' searches; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }
}
