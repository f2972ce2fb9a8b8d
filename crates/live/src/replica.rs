//! The live index as a replica of the bus: with a bus several processes share (NATS), each
//! process applies the telemetry every other process accepted, so nearby, bounding boxes, H3
//! counts and the vehicle stream answer for the whole fleet from any of them; and each mirrors
//! the lifecycle states others recorded.
//!
//! - Telemetry: followed from [`CATCH_UP`] before the start (a process that joins late
//!   rebuilds where vehicles are from the stream's recent past), then live. Reports are
//!   applied to the index only (the ingesting process made them durable); the ones this
//!   process ingested itself come back as duplicates and change nothing.
//! - A report of a vehicle this process has not loaded (registered elsewhere since) loads it
//!   (and its city) from the store first.
//! - Lifecycle: each state change is mirrored from the store's record of the vehicle.
//!
//! With the embedded bus the process is alone (the log is locked to it) and there is nothing
//! to replicate.

use std::{sync::Arc, time::Duration};

use mobility_bus::{EventBus, StartAt, Subscription};
use mobility_core::{Clock, Domain, DomainEvent, TimestampMs, VehicleId};
use mobility_fleet::{Reject, Telemetry, Verdict};
use mobility_store::Store;

use crate::fleet::Fleet;

/// How far back a starting process reads the telemetry stream.
pub const CATCH_UP: Duration = Duration::from_secs(15 * 60);
/// Most events per read.
const READ_MAX: usize = 256;

/// Runs the replica until `stop` (nothing to do on an embedded bus).
pub async fn run(
    bus: Arc<dyn EventBus>,
    fleet: Arc<Fleet>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    if bus.backend() == "embedded" {
        return;
    }
    let catch_up = TimestampMs(
        clock
            .now()
            .0
            .saturating_sub(i64::try_from(CATCH_UP.as_millis()).unwrap_or(0)),
    );
    let telemetry = follow(
        bus.clone(),
        Domain::Telemetry,
        StartAt::Time(catch_up),
        fleet.clone(),
        store.clone(),
        clock.clone(),
        stop.clone(),
    );
    let lifecycle = follow(
        bus,
        Domain::Lifecycle,
        StartAt::New,
        fleet,
        store,
        clock,
        stop,
    );
    tokio::join!(telemetry, lifecycle);
}

/// Subscribes to `domain` from `from`, retrying with back-off until it works or `stop` fires
/// (`None`). Each failure counts in `errors` (a metric name) and is logged as `who`'s.
pub(crate) async fn subscribe_retrying(
    bus: &dyn EventBus,
    domain: Domain,
    from: StartAt,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    errors: &'static str,
    who: &'static str,
) -> Option<Box<dyn Subscription>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match bus.subscribe(domain, None, from).await {
            Ok(s) => return Some(s),
            Err(e) => {
                metrics::counter!(errors).increment(1);
                tracing::warn!(stream = domain.as_str(), error = %e, "{who} cannot follow the stream; retrying");
                tokio::select! {
                    _ = stop.changed() => return None,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn follow(
    bus: Arc<dyn EventBus>,
    domain: Domain,
    mut from: StartAt,
    fleet: Arc<Fleet>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let applied = metrics::counter!("replica_reports_applied_total");
    let lag = metrics::histogram!("replica_lag_seconds");
    loop {
        let Some(mut sub) = subscribe_retrying(
            bus.as_ref(),
            domain,
            from,
            &mut stop,
            "replica_errors_total",
            "the replica",
        )
        .await
        else {
            return;
        };
        loop {
            let got = tokio::select! {
                _ = stop.changed() => return,
                got = sub.next(READ_MAX, Duration::from_millis(500)) => got,
            };
            let events = match got {
                Ok(events) => events,
                Err(e) => {
                    metrics::counter!("replica_errors_total").increment(1);
                    tracing::warn!(stream = domain.as_str(), error = %e, "the replica's subscription failed; following again");
                    break;
                }
            };
            let now = clock.now();
            for e in events {
                from = StartAt::Seq(e.seq + 1);
                match &e.event {
                    DomainEvent::TelemetryAccepted { reports } => {
                        let n = apply_reports(&fleet, store.as_ref(), reports, now).await;
                        applied.increment(n);
                        // From when ingest accepted the event's oldest report to now.
                        #[allow(clippy::cast_precision_loss)]
                        lag.record((now.0 - e.at.0).max(0) as f64 / 1_000.0);
                    }
                    DomainEvent::VehicleStateChanged { vehicle, .. } => {
                        mirror(&fleet, store.as_ref(), *vehicle).await;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Applies reports to the index, loading vehicles it does not know yet; returns how many
/// changed it (duplicates of what this process ingested itself do not).
async fn apply_reports(
    fleet: &Fleet,
    store: &dyn Store,
    reports: &[Telemetry],
    now: TimestampMs,
) -> u64 {
    let verdicts = fleet.ingest(reports, now);
    let changed = |v: &Result<Verdict, Reject>| matches!(v, Ok(Verdict::Applied));
    let mut applied = verdicts.iter().filter(|v| changed(v)).count() as u64;
    let unknown: Vec<Telemetry> = reports
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| matches!(v, Err(Reject::UnknownVehicle)))
        .map(|(t, _)| t.clone())
        .collect();
    if unknown.is_empty() {
        return applied;
    }
    let mut loaded = Vec::new();
    for t in &unknown {
        if !loaded.contains(&t.vehicle_id) && load(fleet, store, t.vehicle_id).await {
            loaded.push(t.vehicle_id);
        }
    }
    if !loaded.is_empty() {
        let again: Vec<Telemetry> = unknown
            .into_iter()
            .filter(|t| loaded.contains(&t.vehicle_id))
            .collect();
        applied += fleet
            .ingest(&again, now)
            .iter()
            .filter(|v| changed(v))
            .count() as u64;
    }
    applied
}

/// Loads a vehicle registered elsewhere (and its city, if that is new here too).
pub(crate) async fn load(fleet: &Fleet, store: &dyn Store, id: VehicleId) -> bool {
    let Ok(Some(v)) = store.vehicle(&id).await else {
        return false;
    };
    if fleet.shard(&v.city).is_none() {
        match store.city(&v.city).await {
            Ok(Some(city)) => {
                fleet.put_city(city);
                if let Ok(fences) = store.geofences(&v.city).await {
                    fleet.set_fences(&v.city, &fences);
                }
            }
            _ => return false,
        }
    }
    // The other stream may have loaded it while this read was under way, with a newer state
    // than this read saw: keep that one.
    if fleet.city_of(&id).is_none() {
        fleet.register(&v);
    }
    true
}

/// Mirrors a vehicle's state as the store recorded it.
async fn mirror(fleet: &Fleet, store: &dyn Store, id: VehicleId) {
    match store.vehicle(&id).await {
        Ok(Some(v)) => {
            if fleet.city_of(&id).is_none() {
                let _ = load(fleet, store, id).await;
            }
            fleet.apply_vehicle(&v);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(vehicle = %id, error = %e, "cannot mirror a vehicle's state"),
    }
}
