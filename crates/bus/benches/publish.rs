//! Publish throughput, batched: `cargo bench -p mobility-bus --bench publish`.
//!
//! Publishes `BUS_BENCH_EVENTS` (default 1,000,000) small events (a booking change, about 250
//! bytes encoded) in batches of `BUS_BENCH_BATCH` (default 1,000) from `BUS_BENCH_TASKS`
//! (default 4) concurrent publishers, on the embedded log in a temp directory and, when
//! `MOBILITY_TEST_NATS_URL` is set, on NATS JetStream (file storage, its own stream prefix,
//! deleted afterwards). Prints events per second; a batch counts once it is durable.
//!
//! Then telemetry as the platform publishes it: `telemetry.accepted` events of
//! `BUS_BENCH_REPORTS` (default 1,000) reports each, `BUS_BENCH_TELEMETRY_EVENTS` (default 500)
//! of them; prints reports per second.

use std::{sync::Arc, time::Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use mobility_bus::{BusConfig, EmbeddedBus, EventBus, NatsBus};
use mobility_core::{CityId, DomainEvent, NewEvent, TimestampMs, VehicleId};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(n: usize, city: &CityId) -> NewEvent {
    NewEvent::new(
        uuid::Uuid::now_v7(),
        Some(city.clone()),
        TimestampMs(1_700_000_000_000),
        DomainEvent::BookingChanged {
            booking: format!("01934f6e-7a4c-7cc1-9b1e-{n:012}"),
            user: "01934f6e-7a4c-7cc1-9b1e-5d2a4f3b8c11".into(),
            vehicle: VehicleId::from_uuid(uuid::Uuid::from_u128(n as u128)),
            from: Some("reserved".into()),
            to: "on_trip".into(),
            at: TimestampMs(1_700_000_000_000),
        },
    )
}

async fn run(name: &str, bus: Arc<dyn EventBus>, total: usize, batch: usize, tasks: usize) {
    let city = CityId::parse("bcn").expect("city");
    // Encoding is part of publishing; building the events is not.
    let batches: Vec<Vec<NewEvent>> = (0..total / batch)
        .map(|b| (0..batch).map(|i| event(b * batch + i, &city)).collect())
        .collect();
    let per_task = batches.len().div_ceil(tasks);
    let mut chunks: Vec<Vec<Vec<NewEvent>>> = Vec::new();
    let mut it = batches.into_iter();
    for _ in 0..tasks {
        chunks.push(it.by_ref().take(per_task).collect());
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for chunk in chunks {
        let bus = bus.clone();
        handles.push(tokio::spawn(async move {
            for b in chunk {
                bus.publish(&b).await.expect("publish");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let secs = start.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = total as f64 / secs;
    println!(
        "{name:>8}: {total} events in batches of {batch} from {tasks} publishers: {secs:.2} s, {rate:.0} events/s"
    );
}

fn telemetry_event(n: usize, reports: usize, city: &CityId) -> NewEvent {
    let t = |i: usize| mobility_core::Telemetry {
        vehicle_id: VehicleId::from_uuid(uuid::Uuid::from_u128((n * reports + i) as u128)),
        at: TimestampMs(1_700_000_000_000 + i64::try_from(i).unwrap_or(0)),
        position: mobility_core::LatLon::new(41.38 + (i % 100) as f64 * 1e-4, 2.17)
            .expect("position"),
        battery: mobility_core::BatteryPct::new(80).ok(),
        speed_m_s: Some(4.2),
        heading_deg: Some(90.0),
        odometer_m: Some(12_345),
        locked: Some(false),
        error_codes: vec![],
    };
    NewEvent::new(
        uuid::Uuid::now_v7(),
        Some(city.clone()),
        TimestampMs(1_700_000_000_000),
        DomainEvent::TelemetryAccepted {
            reports: (0..reports).map(t).collect(),
        },
    )
}

async fn run_telemetry(name: &str, bus: Arc<dyn EventBus>, events: usize, reports: usize) {
    let city = CityId::parse("bcn").expect("city");
    let all: Vec<NewEvent> = (0..events)
        .map(|n| telemetry_event(n, reports, &city))
        .collect();
    let start = Instant::now();
    for chunk in all.chunks(10) {
        bus.publish(chunk).await.expect("publish");
    }
    let secs = start.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = (events * reports) as f64 / secs;
    println!(
        "{name:>8}: {events} telemetry events of {reports} reports: {secs:.2} s, {rate:.0} reports/s"
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let total = env("BUS_BENCH_EVENTS", 1_000_000);
    let batch = env("BUS_BENCH_BATCH", 1_000);
    let tasks = env("BUS_BENCH_TASKS", 4);
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("dir");
        let bus = EmbeddedBus::open(dir.path(), BusConfig::default()).expect("bus");
        let bus: Arc<dyn EventBus> = Arc::new(bus);
        run("embedded", bus.clone(), total, batch, tasks).await;
        let t_events = env("BUS_BENCH_TELEMETRY_EVENTS", 500);
        let t_reports = env("BUS_BENCH_REPORTS", 1_000);
        run_telemetry("embedded", bus, t_events, t_reports).await;
        if let Ok(url) = std::env::var("MOBILITY_TEST_NATS_URL") {
            let prefix = format!("bench{}", uuid::Uuid::now_v7().simple());
            let bus = NatsBus::connect(&url, &prefix, BusConfig::default())
                .await
                .expect("nats");
            run("nats", Arc::new(bus.clone()), total, batch, tasks).await;
            run_telemetry("nats", Arc::new(bus.clone()), t_events, t_reports).await;
            bus.delete_streams().await.expect("cleanup");
        } else {
            println!("    nats: SKIPPED (set MOBILITY_TEST_NATS_URL)");
        }
    });
}
