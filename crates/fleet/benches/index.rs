//! Throughput of the index's hot paths (single thread = one core).
//! Run: `cargo bench -p mobility-fleet --bench index`
#![allow(clippy::unwrap_used)]

mod common;

use common::{NOW, Rng, city, query, updates};
use divan::{Bencher, black_box};

fn main() {
    divan::main();
}

const VEHICLES: u64 = 50_000;

/// One position update (vehicles move a few metres; some cross into a neighbouring cell).
#[divan::bench(sample_count = 50, sample_size = 10_000)]
fn position_update(b: Bencher) {
    let mut rng = Rng::new(7);
    let mut index = city(VEHICLES, &mut rng);
    let batch = updates(VEHICLES, 1_000_000, &mut rng);
    let mut k = 0usize;
    b.bench_local(|| {
        let t = &batch[k % batch.len()];
        k += 1;
        // Timestamps rise with k within one pass; on wrap-around they are stale (still measured).
        black_box(index.apply(t, NOW)).ok();
    });
}

/// Nearest 10 available within 500 m among 50,000 vehicles.
#[divan::bench(sample_count = 50, sample_size = 10_000)]
fn nearest_10_within_500m(b: Bencher) {
    let mut rng = Rng::new(11);
    let index = city(VEHICLES, &mut rng);
    let queries: Vec<_> = (0..100_000).map(|_| query(&mut rng)).collect();
    let mut out = Vec::with_capacity(16);
    let mut k = 0usize;
    b.bench_local(|| {
        index.nearest(&queries[k % queries.len()], &mut out);
        k += 1;
        black_box(out.len());
    });
}
