//! Latency percentiles and memory of the index, figures for docs/benchmarks.md.
//! Run: `cargo bench -p mobility-fleet --bench index_latency`
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

mod common;

use std::time::Instant;

use common::{NOW, Rng, city, query, updates};
use hdrhistogram::Histogram;

fn main() {
    // `cargo test --benches` runs bench binaries with --bench absent; keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (vehicles, queries, memory_n) = if quick {
        (5_000, 10_000, 10_000)
    } else {
        (50_000, 2_000_000, 1_000_000)
    };

    let mut rng = Rng::new(42);
    let index = city(vehicles, &mut rng);
    let qs: Vec<_> = (0..queries).map(|_| query(&mut rng)).collect();
    let mut out = Vec::with_capacity(16);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
    let mut found = 0usize;
    let start = Instant::now();
    for q in &qs {
        let t0 = Instant::now();
        index.nearest(q, &mut out);
        hist.record(t0.elapsed().as_nanos() as u64).unwrap();
        found += out.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "nearest-10 within 500 m, {vehicles} vehicles: {:.0} queries/s (incl. timer overhead), p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, mean hits {:.1}",
        queries as f64 / secs,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.value_at_quantile(0.999) as f64 / 1000.0,
        found as f64 / queries as f64,
    );

    let mut index = index;
    let batch = updates(vehicles, 2_000_000.min(queries), &mut rng);
    let start = Instant::now();
    for t in &batch {
        index.apply(t, NOW).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "position updates, {vehicles} vehicles: {:.0} updates/s",
        batch.len() as f64 / secs
    );

    drop(index);
    let rss_before = rss_bytes();
    let big = city(memory_n, &mut rng);
    let rss_after = rss_bytes();
    println!(
        "memory: {} vehicles: index tables {:.1} bytes per vehicle (capacity count); resident set grew {:.1} bytes per vehicle",
        memory_n,
        big.memory_bytes() as f64 / memory_n as f64,
        rss_after.saturating_sub(rss_before) as f64 / memory_n as f64,
    );
    drop(big);
}

/// Resident set size of this process, from /proc (Linux); 0 elsewhere.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
