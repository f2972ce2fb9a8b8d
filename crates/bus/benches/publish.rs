//! Publish throughput, batched: `cargo bench -p mobility-bus --bench publish`.
//!
//! Publishes `BUS_BENCH_EVENTS` (default 1,000,000) small events (a booking change, about 250
//! bytes encoded) in batches of `BUS_BENCH_BATCH` (default 1,000) from `BUS_BENCH_TASKS`
//! (default 4) concurrent publishers, on the embedded log in a temp directory and, when
//! `MOBILITY_TEST_NATS_URL` is set, on NATS JetStream (file storage, its own stream prefix,
//! deleted afterwards). Prints events per second; a batch counts once it is durable.

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
        run("embedded", Arc::new(bus), total, batch, tasks).await;
        if let Ok(url) = std::env::var("MOBILITY_TEST_NATS_URL") {
            let prefix = format!("bench{}", uuid::Uuid::now_v7().simple());
            let bus = NatsBus::connect(&url, &prefix, BusConfig::default())
                .await
                .expect("nats");
            run("nats", Arc::new(bus.clone()), total, batch, tasks).await;
            bus.delete_streams().await.expect("cleanup");
        } else {
            println!("    nats: SKIPPED (set MOBILITY_TEST_NATS_URL)");
        }
    });
}
