//! The platform on the event bus: the relay that publishes what ingest accepted, and the
//! reactions, each a named durable consumer of one stream.
//!
//! - [`Relay`]: accepted telemetry (after the live log made it durable) and the geofence
//!   crossings it caused go into a bounded queue; one task coalesces them into
//!   `telemetry.accepted` events per city and `fleet.*` events and publishes them, retrying
//!   with back-off and never dropping. A full queue slows ingest down (back-pressure) rather
//!   than losing an event.
//! - `geofence-actions` (stream `fleet`): counts crossings and alerts, keeps the dashboard's
//!   recent-events feed, and sends slow-zone speed limits to vehicles.
//! - [`outbox_relay`]: the store's transactional outbox (booking, payment, KYC, lifecycle and
//!   admin events, each written in the transaction of its change) published in order, then
//!   deleted. Several processes may relay the same rows: the bus deduplicates by id.
//! - `notify-bookings` (stream `booking`) and `notify-accounts` (stream `account`): riders'
//!   notifications (reservation expired, the trip's receipt once its payment is settled, KYC
//!   results) written to the notification outbox.
//! - [`DemandRelay`]: riders' searches (a read endpoint only hands them over) counted per city,
//!   minute and H3 zone, published every second as `demand.searched`; the `intel-demand`
//!   consumer adds them to the fleet's search log (what intel stores and forecasts from), and
//!   `intel-returns` counts trips' ends from the lifecycle stream.
//! - Lag: every consumer's unacked events are the gauge `bus_consumer_lag{consumer}`.
//!
//! Known gap (next step of the spine): a crash after the live log's fsync and before the
//! relay's publish loses those reports' events (not the reports: they are in the live log).
//! Closing it means relaying from the live log itself, as a transactional outbox.

use std::{sync::Arc, time::Duration};

use mobility_bus::{ConsumerSpec, EventBus};
use mobility_core::{CityId, Domain, DomainEvent, NewEvent, TimestampMs};
use mobility_fleet::{
    Telemetry,
    geofence::{Direction, ZoneKind},
};
use tokio::sync::mpsc;

use crate::fleet::{Fleet, FleetEvent, FleetEvents, Reaction};

/// Batches queued for the relay before ingest waits.
pub const RELAY_QUEUE_MAX: usize = 1_024;
/// Most reports in one `telemetry.accepted` event (well under the bus's event size).
pub const REPORTS_PER_EVENT_MAX: usize = 2_000;
/// How long the relay waits for more before publishing a small batch.
const RELAY_LINGER: Duration = Duration::from_millis(10);
/// Most reports the relay coalesces into one publish.
const RELAY_REPORTS_MAX: usize = 20_000;

enum Item {
    Accepted(Vec<Telemetry>, Vec<Reaction>),
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
    pub fn start(bus: Arc<dyn EventBus>, fleet: Arc<Fleet>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(RELAY_QUEUE_MAX);
        let task = tokio::spawn(run_relay(bus, fleet, rx));
        (Self { tx }, task)
    }

    /// Queues accepted reports and the crossings they caused (waits while the queue is full).
    pub async fn accepted(&self, reports: Vec<Telemetry>, reactions: Vec<Reaction>) {
        if self
            .tx
            .send(Item::Accepted(reports, reactions))
            .await
            .is_err()
        {
            metrics::counter!("bus_relay_closed_total").increment(1);
            tracing::error!("the event relay has stopped; accepted telemetry is not published");
        }
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

async fn run_relay(bus: Arc<dyn EventBus>, fleet: Arc<Fleet>, mut rx: mpsc::Receiver<Item>) {
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
                    let Item::Accepted(r, _) = &item;
                    n += r.len();
                    items.push(item);
                }
                Err(_) => break,
            }
        }
        let now = crate::http::now();
        let mut by_city: std::collections::BTreeMap<CityId, Vec<Telemetry>> =
            std::collections::BTreeMap::new();
        let mut events = Vec::new();
        let mut reports_n = 0u64;
        for Item::Accepted(reports, reactions) in items {
            reports_n += reports.len() as u64;
            fleet.group_by_city_owned(reports, &mut by_city);
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
                    now,
                    DomainEvent::TelemetryAccepted { reports },
                ));
                reports = rest;
            }
        }
        all.extend(events);
        let mut backoff = Duration::from_millis(50);
        loop {
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
    }
}

/// The geofence-actions consumer's spec.
#[must_use]
pub fn geofence_actions_spec() -> ConsumerSpec {
    ConsumerSpec::new("geofence-actions", Domain::Fleet)
}

/// Runs a consumer until `stop` fires: each event goes to `handle`; `Ok` acks it, `Err` naks
/// it (redelivered after the consumer's back-off, dead-lettered after its attempts).
pub async fn run_consumer<F, Fut>(
    bus: Arc<dyn EventBus>,
    spec: ConsumerSpec,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handle: F,
) where
    F: Fn(mobility_bus::Envelope) -> Fut + Send,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let name = spec.name.clone();
    let mut consumer = loop {
        match bus.consumer(spec.clone()).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "cannot open a consumer; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    let handled = metrics::counter!("bus_consumed_total", "consumer" => name.clone());
    let failed = metrics::counter!("bus_consumer_errors_total", "consumer" => name.clone());
    loop {
        let batch = tokio::select! {
            b = consumer.fetch(256, Duration::from_secs(1)) => b,
            _ = stop.changed() => return,
        };
        let deliveries = match batch {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "cannot fetch; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for d in deliveries {
            let outcome = handle(d.envelope.clone()).await;
            let acked = match outcome {
                Ok(()) => {
                    handled.increment(1);
                    d.ack().await
                }
                Err(e) => {
                    failed.increment(1);
                    tracing::warn!(consumer = %name, seq = d.envelope.seq, attempt = d.attempt, error = %e, "event not handled; it comes again");
                    d.nak().await
                }
            };
            if let Err(e) = acked {
                tracing::warn!(consumer = %name, error = %e, "cannot ack");
            }
        }
    }
}

/// Runs the geofence-actions consumer until `stop` fires.
pub async fn geofence_actions(
    bus: Arc<dyn EventBus>,
    feed: Arc<FleetEvents>,
    commands: Arc<crate::commands::Commands>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    run_consumer(bus, geofence_actions_spec(), stop, move |e| {
        let (feed, commands) = (feed.clone(), commands.clone());
        async move {
            on_fleet_event(&e, &feed, &commands);
            Ok(())
        }
    })
    .await;
}

fn on_fleet_event(
    e: &mobility_bus::Envelope,
    feed: &FleetEvents,
    commands: &Arc<crate::commands::Commands>,
) {
    let city = e
        .city
        .as_ref()
        .map_or_else(String::new, ToString::to_string);
    match &e.event {
        DomainEvent::GeofenceCrossed {
            vehicle,
            at,
            fence_id,
            zone,
            direction,
            speed_limit_kmh,
        } => {
            metrics::counter!("geofence_crossings_total", "zone" => zone.clone(), "direction" => direction.clone()).increment(1);
            feed.record(FleetEvent {
                seq: 0,
                at_ms: at.0,
                city,
                vehicle_id: vehicle.to_string(),
                kind: "geofence",
                name: direction.clone(),
                fence_id: fence_id.clone(),
                zone: zone.clone(),
                detail: None,
            });
            if let Some(kmh) = *speed_limit_kmh {
                send_speed_limit(commands.clone(), *vehicle, kmh, crate::http::now());
            }
        }
        DomainEvent::FleetAlert {
            vehicle,
            at,
            alert,
            fence_id,
            zone,
        } => {
            metrics::counter!("fleet_alerts_total", "alert" => alert.clone()).increment(1);
            tracing::info!(vehicle = %vehicle, alert = %alert, fence = %fence_id, "fleet alert");
            feed.record(FleetEvent {
                seq: 0,
                at_ms: at.0,
                city,
                vehicle_id: vehicle.to_string(),
                kind: "alert",
                name: alert.clone(),
                fence_id: fence_id.clone(),
                zone: zone.clone(),
                detail: None,
            });
        }
        _ => {}
    }
}

/// The notification consumers' specs: riders hear about their bookings and KYC decisions.
#[must_use]
pub fn notify_specs() -> [ConsumerSpec; 2] {
    [
        ConsumerSpec::new("notify-bookings", Domain::Booking),
        ConsumerSpec::new("notify-accounts", Domain::Account),
    ]
}

/// Runs the notification consumers until `stop` fires: each turns events into the riders'
/// notification outbox (whose event keys make a redelivered event announce nothing twice).
pub async fn notifications(
    bus: Arc<dyn EventBus>,
    store: Arc<dyn mobility_store::Store>,
    notifier: Arc<crate::notifications::Notifier>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let [bookings, accounts] = notify_specs();
    let on_booking = {
        let (store, notifier) = (store.clone(), notifier.clone());
        run_consumer(bus.clone(), bookings, stop.clone(), move |e| {
            let (store, notifier) = (store.clone(), notifier.clone());
            async move { notify_booking(&e, store.as_ref(), &notifier).await }
        })
    };
    let on_account = run_consumer(bus, accounts, stop, move |e| {
        let (store, notifier) = (store.clone(), notifier.clone());
        async move { notify_account(&e, store.as_ref(), &notifier).await }
    });
    tokio::join!(on_booking, on_account);
}

async fn notify_booking(
    e: &mobility_bus::Envelope,
    store: &dyn mobility_store::Store,
    notifier: &crate::notifications::Notifier,
) -> Result<(), String> {
    let DomainEvent::BookingChanged {
        booking,
        user,
        vehicle,
        to,
        at,
        ..
    } = &e.event
    else {
        return Ok(());
    };
    match to.as_str() {
        "expired" => notifier
            .announce(
                user,
                &format!("reservation_expired:{booking}"),
                "reservation_expired",
                &serde_json::json!({"booking_id": booking, "vehicle_id": vehicle.to_string()}),
                *at,
            )
            .await
            .map_err(|e| e.to_string()),
        // The receipt goes out once the trip's payment is settled: the booking's last update
        // records how it was paid.
        "ended" => {
            let Some(b) = store.booking(booking).await.map_err(|e| e.to_string())? else {
                return Ok(());
            };
            let (Some(note), Some(receipt)) = (&b.trip.detail, &b.trip.receipt) else {
                return Ok(());
            };
            let receipt: serde_json::Value =
                serde_json::from_str(receipt).unwrap_or(serde_json::Value::Null);
            let (started, ended) = (
                b.trip.started_at.unwrap_or(*at),
                b.trip.ended_at.unwrap_or(*at),
            );
            #[allow(clippy::cast_precision_loss)]
            let km = (b.trip.distance_m.unwrap_or(0) as f64 / 100.0).round() / 10.0;
            notifier
                .announce(
                    &b.user_id,
                    &format!("receipt:{}", b.id),
                    "receipt",
                    &serde_json::json!({
                        "booking_id": b.id,
                        "total": receipt["total_display"],
                        "minutes": ended.since(started).max(0) / 60_000,
                        "km": km,
                        "payment": note,
                        "receipt": receipt,
                    }),
                    ended,
                )
                .await
                .map_err(|e| e.to_string())
        }
        _ => Ok(()),
    }
}

async fn notify_account(
    e: &mobility_bus::Envelope,
    store: &dyn mobility_store::Store,
    notifier: &crate::notifications::Notifier,
) -> Result<(), String> {
    let DomainEvent::KycDecided {
        user,
        submission,
        at,
        ..
    } = &e.event
    else {
        return Ok(());
    };
    let kyc = store.user_kyc(user).await.map_err(|e| e.to_string())?;
    let Some(k) = kyc.iter().find(|k| k.id == *submission) else {
        return Ok(());
    };
    notifier
        .announce(
            &k.user_id,
            &format!("kyc:{}", k.id),
            "kyc_result",
            &serde_json::json!({"kind": k.kind, "state": k.state, "reason": k.reason}),
            *at,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Sends a slow-zone speed limit without waiting for the vehicle (the command is tracked).
fn send_speed_limit(
    commands: Arc<crate::commands::Commands>,
    vehicle: mobility_core::VehicleId,
    kmh: u8,
    now: TimestampMs,
) {
    tokio::spawn(async move {
        let kind = mobility_core::CommandKind::SetSpeedLimit {
            speed_limit_kmh: kmh,
        };
        if let Err(e) = commands.send(vehicle, kind, 10_000, now).await {
            tracing::warn!(%vehicle, error = %e, "cannot send a slow-zone speed limit");
        }
    });
}

/// Every consumer the platform runs (for the lag gauge and `mobility events consumers`).
#[must_use]
pub fn consumers() -> Vec<ConsumerSpec> {
    let mut all = vec![geofence_actions_spec()];
    all.extend(notify_specs());
    all.extend(intel_specs());
    all
}

/// Sets `bus_consumer_lag{consumer}` for every consumer every few seconds, until `stop`.
pub async fn lag_metrics(bus: Arc<dyn EventBus>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut handles = Vec::new();
    for spec in consumers() {
        if let Ok(c) = bus.consumer(spec).await {
            handles.push(c);
        }
    }
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        for c in &handles {
            if let Ok(lag) = c.lag().await {
                #[allow(clippy::cast_precision_loss)]
                metrics::gauge!("bus_consumer_lag", "consumer" => c.spec().name.clone())
                    .set(lag as f64);
            }
        }
    }
}

/// Outbox events relayed per round.
const OUTBOX_BATCH_MAX: u32 = 1_000;
/// How often an empty outbox is looked at again.
const OUTBOX_POLL: Duration = Duration::from_millis(50);

/// Publishes the store's outbox to the bus until `stop` fires (then relays what is left once).
pub async fn outbox_relay(
    store: Arc<dyn mobility_store::Store>,
    bus: Arc<dyn EventBus>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let relayed = metrics::counter!("bus_outbox_relayed_total");
    let mut backoff = OUTBOX_POLL;
    loop {
        let stopping = *stop.borrow();
        match relay_once(store.as_ref(), bus.as_ref()).await {
            Ok(0) => {
                if stopping {
                    return;
                }
                backoff = OUTBOX_POLL;
                tokio::select! {
                    () = tokio::time::sleep(OUTBOX_POLL) => {}
                    _ = stop.changed() => {}
                }
            }
            Ok(n) => {
                relayed.increment(n as u64);
                backoff = OUTBOX_POLL;
            }
            Err(e) => {
                metrics::counter!("bus_outbox_errors_total").increment(1);
                tracing::warn!(error = %e, "cannot relay the event outbox; retrying");
                if stopping {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One round: publish what the outbox holds (in order), then delete it. Returns how many.
pub async fn relay_once(
    store: &dyn mobility_store::Store,
    bus: &dyn EventBus,
) -> Result<usize, String> {
    let rows = store
        .outbox_events(0, OUTBOX_BATCH_MAX)
        .await
        .map_err(|e| e.to_string())?;
    let Some(last) = rows.last().map(|r| r.seq) else {
        return Ok(0);
    };
    let events: Vec<NewEvent> = rows.into_iter().map(|r| r.event).collect();
    bus.publish(&events).await.map_err(|e| e.to_string())?;
    store
        .delete_outbox_events(last)
        .await
        .map_err(|e| e.to_string())?;
    Ok(events.len())
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

/// The intel consumers' specs.
#[must_use]
pub fn intel_specs() -> [ConsumerSpec; 2] {
    [
        ConsumerSpec::new("intel-demand", Domain::Demand),
        ConsumerSpec::new("intel-returns", Domain::Lifecycle),
    ]
}

/// Runs the intel consumers until `stop`: searches into the fleet's search log, trips' ends
/// as returns.
pub async fn intel(
    bus: Arc<dyn EventBus>,
    fleet: Arc<Fleet>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let [demand, returns] = intel_specs();
    let searches = {
        let fleet = fleet.clone();
        run_consumer(bus.clone(), demand, stop.clone(), move |e| {
            let fleet = fleet.clone();
            async move {
                if let (Some(city), DomainEvent::RidersSearched { minute, cells }) =
                    (&e.city, &e.event)
                {
                    fleet.add_searches(city, *minute, cells);
                }
                Ok(())
            }
        })
    };
    let ends = run_consumer(bus, returns, stop, move |e| {
        let fleet = fleet.clone();
        async move {
            if let (
                Some(city),
                DomainEvent::VehicleStateChanged {
                    from: mobility_core::VehicleState::OnTrip,
                    to,
                    location: Some(at),
                    ..
                },
            ) = (&e.city, &e.event)
                && *to != mobility_core::VehicleState::OnTrip
            {
                // Counted when the platform learned of it (the vehicle's clock may be off).
                fleet.note_return(city, *at, e.stored);
            }
            Ok(())
        }
    });
    tokio::join!(searches, ends);
}

/// Opens every consumer once, so each exists (at its start) before anything is published.
pub async fn ensure_consumers(bus: &dyn EventBus) -> Result<(), mobility_bus::BusError> {
    for spec in consumers() {
        bus.consumer(spec).await?;
    }
    Ok(())
}
