//! Scheduled jobs that run once across every process: a lease per job in the database (the
//! one place every process already shares), and each job's last run.
//!
//! A process runs a job only while it holds the job's lease; it renews the lease at each run,
//! and a lease not renewed in time (its holder died) can be taken by any other process.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// A job's last run, as recorded by the process that ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    /// The job.
    pub name: String,
    /// The process that ran it.
    pub holder: String,
    /// When it started.
    pub started_at: TimestampMs,
    /// How long it took, milliseconds.
    pub duration_ms: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What the console shows of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    /// The job.
    pub name: String,
    /// The lease: who holds it and until when (a lease past its time is free).
    pub lease: Option<(String, TimestampMs)>,
    /// Its last run.
    pub last_run: Option<JobRun>,
    /// Runs recorded.
    pub runs: i64,
    /// Of those, failed.
    pub failures: i64,
    /// The most recent error of any run, and when.
    pub last_error: Option<(String, TimestampMs)>,
}

/// Job leases and runs.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// Takes or renews the lease of `name` for `holder` until `now + ttl_ms`: granted when
    /// nobody holds it, when `holder` already does, or when the holder's lease ran out by
    /// `now`. Atomic: of processes racing for a free lease, exactly one gets it.
    async fn acquire_job_lease(
        &self,
        name: &str,
        holder: &str,
        now: TimestampMs,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up (a process shutting down), if `holder` holds it.
    async fn release_job_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Records a job's latest run, and adds `runs` runs of which `failures` failed since the
    /// last record (a job every few hundred milliseconds records a few times a minute, not at
    /// every run). An error is kept as the job's last.
    async fn record_job_run(
        &self,
        run: &JobRun,
        runs: i64,
        failures: i64,
    ) -> Result<(), StoreError>;

    /// Every job with a lease or a recorded run, by name.
    async fn job_statuses(&self) -> Result<Vec<JobStatus>, StoreError>;
}
