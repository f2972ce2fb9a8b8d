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
//! - A process that joins late starts from the fleet's snapshot on the bus (the `fleet` blob:
//!   every vehicle's latest report, and the last telemetry sequence it covers), then follows
//!   the stream from the next sequence; without one, from [`CATCH_UP`] back. A worker writes
//!   the snapshot every minute ([`publish_snapshot`], the `fleet-snapshot` job), so a joiner
//!   reads at most a minute of the stream after it, and knows where vehicles silent for longer
//!   than the catch-up are.
//!
//! With the embedded bus the process is alone (the log is locked to it) and there is nothing
//! to replicate.

use std::{sync::Arc, time::Duration};

use mobility_bus::{EventBus, StartAt, Subscription};
use mobility_core::{Clock, Domain, DomainEvent, TimestampMs, VehicleId};
use mobility_fleet::{Reject, Telemetry, Verdict};
use mobility_store::Store;

use crate::fleet::Fleet;

/// How far back a starting process reads the telemetry stream when the bus has no snapshot.
pub const CATCH_UP: Duration = Duration::from_secs(15 * 60);
/// The blob the fleet's snapshot is kept under on the bus.
pub const SNAPSHOT_BLOB: &str = "fleet";
/// The first bytes of a snapshot (format version 1).
const SNAPSHOT_MAGIC: &[u8; 8] = b"MOBFLT01";

/// A snapshot: the last telemetry sequence it covers, when it was taken, then every report in
/// the live log's record format.
#[must_use]
pub fn encode_snapshot(covers: u64, taken_at: TimestampMs, reports: &[Telemetry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + reports.len() * 64);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&covers.to_le_bytes());
    out.extend_from_slice(&taken_at.0.to_le_bytes());
    for t in reports {
        crate::live_log::encode_record(t, &mut out);
    }
    out
}

/// The sequence, time and reports of a snapshot; `None` if it is not one (or is damaged).
#[must_use]
pub fn decode_snapshot(bytes: &[u8]) -> Option<(u64, TimestampMs, Vec<Telemetry>)> {
    let rest = bytes.strip_prefix(SNAPSHOT_MAGIC)?;
    let covers = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    let taken_at = TimestampMs(i64::from_le_bytes(rest.get(8..16)?.try_into().ok()?));
    let body = rest.get(16..)?;
    let (reports, valid) = crate::live_log::decode_records(body);
    (valid == body.len()).then_some((covers, taken_at, reports))
}

/// Writes the fleet's snapshot to the bus: every vehicle's latest report, and the last
/// telemetry sequence the replica had applied before they were read (everything up to it is
/// in; a little after it may be too, which a joiner applying the stream again ignores).
/// Returns how many vehicles it holds; 0 with nothing to cover (the embedded bus, or a replica
/// that has applied nothing yet).
pub async fn publish_snapshot(
    bus: &dyn EventBus,
    fleet: &Fleet,
    now: TimestampMs,
) -> Result<usize, String> {
    if bus.backend() == "embedded" {
        return Ok(0);
    }
    let covers = fleet.replica_seq.load(std::sync::atomic::Ordering::Acquire);
    if covers == 0 {
        return Ok(0);
    }
    let reports = fleet.latest_reports();
    let bytes = encode_snapshot(covers, now, &reports);
    metrics::gauge!("replica_snapshot_bytes").set(bytes.len() as f64);
    bus.put_blob(SNAPSHOT_BLOB, bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(reports.len())
}

/// Applies the bus's snapshot, if there is one; returns the sequence to follow the telemetry
/// stream from.
async fn start_from_snapshot(
    bus: &dyn EventBus,
    fleet: &Fleet,
    store: &dyn Store,
    now: TimestampMs,
) -> Option<u64> {
    let bytes = match bus.get_blob(SNAPSHOT_BLOB).await {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the fleet's snapshot from the bus; catching up from the stream");
            return None;
        }
    };
    let Some((covers, taken_at, reports)) = decode_snapshot(&bytes) else {
        metrics::counter!("replica_errors_total").increment(1);
        tracing::warn!("the fleet's snapshot on the bus is damaged; catching up from the stream");
        return None;
    };
    let started = std::time::Instant::now();
    let applied = apply_reports(fleet, store, &reports, now).await;
    fleet
        .replica_seq
        .fetch_max(covers, std::sync::atomic::Ordering::AcqRel);
    tracing::info!(
        vehicles = reports.len(),
        applied,
        covers_seq = covers,
        age_s = (now.0 - taken_at.0) / 1_000,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "the replica starts from the fleet's snapshot on the bus"
    );
    Some(covers + 1)
}
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
    let from = match start_from_snapshot(bus.as_ref(), &fleet, store.as_ref(), clock.now()).await {
        Some(seq) => StartAt::Seq(seq),
        None => StartAt::Time(catch_up),
    };
    let telemetry = follow(
        bus.clone(),
        Domain::Telemetry,
        from,
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
                        fleet
                            .replica_seq
                            .fetch_max(e.seq, std::sync::atomic::Ordering::AcqRel);
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

#[cfg(test)]
mod tests {
    use super::*;
    use mobility_core::{BatteryPct, LatLon};

    fn report(n: u128, at: i64) -> Telemetry {
        Telemetry {
            vehicle_id: VehicleId::from_uuid(uuid::Uuid::from_u128(n)),
            at: TimestampMs(at),
            position: LatLon::new(41.38, 2.17).unwrap_or(LatLon::ORIGIN),
            battery: BatteryPct::new(55).ok(),
            speed_m_s: Some(3.5),
            heading_deg: None,
            odometer_m: Some(1_200),
            locked: Some(true),
            error_codes: vec![7, 12],
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_written_and_a_damaged_one_not_at_all() {
        let reports = vec![report(1, 1_000), report(2, 2_000)];
        let bytes = encode_snapshot(41, TimestampMs(5_000), &reports);
        let (covers, taken_at, back) = decode_snapshot(&bytes).expect("a snapshot");
        assert_eq!((covers, taken_at), (41, TimestampMs(5_000)));
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].vehicle_id, reports[0].vehicle_id);
        assert_eq!(back[1].at, TimestampMs(2_000));
        assert_eq!(back[0].error_codes, vec![7, 12]);
        assert!(decode_snapshot(&bytes[..bytes.len() - 3]).is_none(), "torn");
        assert!(decode_snapshot(b"MOBFLT02rest").is_none(), "another format");
        assert!(decode_snapshot(b"").is_none());
        let empty = encode_snapshot(0, TimestampMs(0), &[]);
        assert_eq!(decode_snapshot(&empty).map(|s| s.2.len()), Some(0));
    }
}
