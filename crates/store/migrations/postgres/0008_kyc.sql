-- Know-your-customer checks: what a rider submitted (identity, or a driving licence for cars
-- and vans) and what review decided. Personal data lives only here and is never logged.

CREATE TABLE kyc_submissions (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users (id),
    kind             TEXT NOT NULL,      -- identity, driving_licence
    state            TEXT NOT NULL,      -- pending, verified, rejected
    full_name        TEXT NOT NULL,
    date_of_birth    TEXT NOT NULL,      -- YYYY-MM-DD
    document_number  TEXT NOT NULL,
    expires_on       TEXT,               -- YYYY-MM-DD, licences
    provider         TEXT NOT NULL,      -- manual (built-in review queue) or an external provider
    reason           TEXT,               -- why it was rejected
    submitted_at_ms  BIGINT NOT NULL,
    decided_at_ms    BIGINT,
    decided_by       TEXT
);

CREATE INDEX kyc_by_user ON kyc_submissions (user_id, kind, submitted_at_ms);
CREATE INDEX kyc_queue ON kyc_submissions (state, submitted_at_ms);
