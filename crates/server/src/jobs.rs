//! Scheduled jobs that run once across every process sharing the database: each run is
//! preceded by taking (or renewing) the job's lease in the store, so of several `mobility
//! serve` processes exactly one runs a job at a time, and another takes over within the
//! lease's time when its holder dies. Each run is timed, counted in `/metrics`
//! (`job_runs_total{job,outcome}`, `job_duration_seconds{job}`) and recorded for
//! `mobility jobs` and `GET /v1/admin/jobs`.
//!
//! What each process does for itself (its live log's snapshots and history, its metrics) is
//! not a job here: it runs in every process.

use std::{future::Future, sync::Arc, time::Duration};

use mobility_core::{Clock, TimestampMs};
use mobility_store::{JobRun, Store};

/// A job's name and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSpec {
    /// Its name (the lease's key).
    pub name: &'static str,
    /// How often it runs.
    pub every: Duration,
}

/// Every job, in the order the console lists them.
pub const JOBS: [JobSpec; 5] = [
    JobSpec {
        name: "command-timeouts",
        every: Duration::from_millis(250),
    },
    JobSpec {
        name: "hold-expiry",
        every: Duration::from_millis(250),
    },
    JobSpec {
        name: "notification-delivery",
        every: Duration::from_millis(250),
    },
    // Demand slots, forecasts (every 15 min), prices (every 5 min) and the field plan (every
    // 15 min) are decided inside this one tick.
    JobSpec {
        name: "intel",
        every: Duration::from_secs(60),
    },
    // The live fleet's snapshot on the bus, which processes joining late start from (a
    // no-op on the embedded bus: one process, nobody joins).
    JobSpec {
        name: "fleet-snapshot",
        every: Duration::from_secs(60),
    },
];

/// The jobs with their periods as configured (the fleet's snapshot on the bus has its own).
#[must_use]
pub fn configured(settings: &crate::Settings) -> Vec<JobSpec> {
    JOBS.iter()
        .map(|j| match j.name {
            "fleet-snapshot" => JobSpec {
                every: Duration::from_secs(settings.replica_snapshot_interval_s),
                ..*j
            },
            _ => *j,
        })
        .collect()
}

/// How long a lease lasts: three periods, at least 10 s (a holder that misses a few runs keeps
/// it; one that is gone loses it within this).
#[must_use]
pub fn lease_ms(every: Duration) -> i64 {
    i64::try_from((every * 3).max(Duration::from_secs(10)).as_millis()).unwrap_or(i64::MAX)
}

/// At most this often a fast job writes its run to the store (its counts add up meanwhile).
const RECORD_EVERY_MS: i64 = 5_000;

/// Runs `job` every `spec.every` while this process (`holder`) holds its lease, until `stop`;
/// then gives the lease up.
pub async fn run<F, Fut>(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    holder: String,
    spec: JobSpec,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut job: F,
) where
    F: FnMut(TimestampMs) -> Fut + Send,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let ttl = lease_ms(spec.every);
    let mut held_until = TimestampMs(i64::MIN);
    let (mut runs, mut failures) = (0_i64, 0_i64);
    let mut recorded_at = TimestampMs(i64::MIN);
    let ok = metrics::counter!("job_runs_total", "job" => spec.name, "outcome" => "ok");
    let failed = metrics::counter!("job_runs_total", "job" => spec.name, "outcome" => "failed");
    let duration = metrics::histogram!("job_duration_seconds", "job" => spec.name);
    let mut tick = tokio::time::interval(spec.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let now = clock.now();
        // Renewed when half of it is left: a write per few runs, not per run.
        if now.0 >= held_until.0.saturating_sub(ttl / 2) {
            match store.acquire_job_lease(spec.name, &holder, now, ttl).await {
                Ok(true) => held_until = TimestampMs(now.0 + ttl),
                Ok(false) => {
                    held_until = TimestampMs(i64::MIN);
                    continue;
                }
                Err(e) => {
                    metrics::counter!("job_lease_errors_total", "job" => spec.name).increment(1);
                    tracing::warn!(job = spec.name, error = %e, "cannot take the job's lease; not running it this time");
                    continue;
                }
            }
        }
        let started = std::time::Instant::now();
        let result = job(now).await;
        let took = started.elapsed();
        duration.record(took.as_secs_f64());
        runs += 1;
        let error = match result {
            Ok(()) => {
                ok.increment(1);
                None
            }
            Err(e) => {
                failed.increment(1);
                failures += 1;
                tracing::warn!(job = spec.name, error = %e, "job failed; it runs again next time");
                Some(e)
            }
        };
        if error.is_some() || now.0.saturating_sub(recorded_at.0) >= RECORD_EVERY_MS {
            let run = JobRun {
                name: spec.name.to_owned(),
                holder: holder.clone(),
                started_at: now,
                duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
                error,
            };
            match store.record_job_run(&run, runs, failures).await {
                Ok(()) => {
                    (runs, failures) = (0, 0);
                    recorded_at = now;
                }
                Err(e) => {
                    tracing::warn!(job = spec.name, error = %e, "cannot record the job's run")
                }
            }
        }
    }
    if let Err(e) = store.release_job_lease(spec.name, &holder).await {
        tracing::warn!(job = spec.name, error = %e, "cannot give the job's lease up; it runs out by itself");
    }
}

/// This process's name as a lease holder: host, process id and a random suffix (two
/// processes never share one, even in one container or after a pid is reused).
#[must_use]
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &suffix[suffix.len() - 6..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_outlast_a_few_missed_runs() {
        assert_eq!(lease_ms(Duration::from_millis(250)), 10_000);
        assert_eq!(lease_ms(Duration::from_secs(60)), 180_000);
        let names: std::collections::BTreeSet<_> = JOBS.iter().map(|j| j.name).collect();
        assert_eq!(names.len(), JOBS.len(), "job names are unique");
    }

    #[test]
    fn holders_differ() {
        assert_ne!(holder_id(), holder_id());
    }
}
