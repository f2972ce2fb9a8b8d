-- Scheduled jobs that run once across every process: a lease per job (who runs it, until
-- when), and each job's last run as the operators' console shows it.
CREATE TABLE job_leases (
    name           TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,        -- the process holding it
    expires_at_ms  BIGINT NOT NULL       -- another process may take it from then on
);

CREATE TABLE job_runs (
    name           TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,        -- the process that ran it last
    started_at_ms  BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    error          TEXT,                 -- the last run's error, if it failed
    runs           BIGINT NOT NULL DEFAULT 0,
    failures       BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT,                 -- the most recent error of any run
    last_error_at_ms BIGINT
);
