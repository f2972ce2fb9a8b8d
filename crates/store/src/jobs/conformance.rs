//! The conformance cases of [`crate::jobs`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Of many processes racing for a free lease exactly one gets it; its holder renews it; nobody
/// else takes it before it runs out, anybody may after; a released lease is free.
pub async fn job_leases_have_one_holder_and_pass_on_when_they_run_out(store: Arc<dyn Store>) {
    let now = TimestampMs(1_000_000);
    let mut racers = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            store
                .acquire_job_lease("prices", &format!("p{i}"), now, 30_000)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one racer holds the lease");
    let statuses = store.job_statuses().await.unwrap();
    let (holder, until) = statuses[0].lease.clone().unwrap();
    assert_eq!(until, TimestampMs(now.0 + 30_000));
    let other = if holder == "p0" { "p1" } else { "p0" };
    // Renewed by its holder, refused to anyone else while it lasts.
    assert!(
        store
            .acquire_job_lease("prices", &holder, TimestampMs(now.0 + 10_000), 30_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_job_lease("prices", other, TimestampMs(now.0 + 39_999), 30_000)
            .await
            .unwrap()
    );
    // Run out (the holder stopped renewing): taken over.
    assert!(
        store
            .acquire_job_lease("prices", other, TimestampMs(now.0 + 40_000), 30_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_job_lease("prices", &holder, TimestampMs(now.0 + 40_001), 30_000)
            .await
            .unwrap()
    );
    // Released by someone else: nothing happens; by its holder: free.
    store.release_job_lease("prices", &holder).await.unwrap();
    assert!(
        !store
            .acquire_job_lease("prices", "p19", TimestampMs(now.0 + 40_002), 30_000)
            .await
            .unwrap()
    );
    store.release_job_lease("prices", other).await.unwrap();
    assert!(
        store
            .acquire_job_lease("prices", "p19", TimestampMs(now.0 + 40_003), 30_000)
            .await
            .unwrap()
    );
    // Another job's lease is its own.
    assert!(
        store
            .acquire_job_lease("forecast", other, now, 30_000)
            .await
            .unwrap()
    );
}

/// Runs are counted; the last one is kept, and the last error stays until another fails.
pub async fn job_runs_are_counted_and_the_last_error_kept(store: Arc<dyn Store>) {
    let run = |at: i64, error: Option<&str>| JobRun {
        name: "forecast".into(),
        holder: "p1".into(),
        started_at: TimestampMs(at),
        duration_ms: 12,
        error: error.map(str::to_owned),
    };
    store.record_job_run(&run(1_000, None), 1, 0).await.unwrap();
    store
        .record_job_run(&run(2_000, Some("no history")), 1, 1)
        .await
        .unwrap();
    // Several runs since the last record, one of them failed (before this last one).
    store.record_job_run(&run(3_000, None), 5, 1).await.unwrap();
    let s = store.job_statuses().await.unwrap();
    assert_eq!(s.len(), 1);
    let s = &s[0];
    assert_eq!((s.runs, s.failures), (7, 2));
    assert_eq!(s.last_run, Some(run(3_000, None)));
    assert_eq!(
        s.last_error,
        Some(("no history".into(), TimestampMs(2_000)))
    );
    assert_eq!(s.lease, None);
}
