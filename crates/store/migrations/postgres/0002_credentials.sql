-- Per-vehicle device credentials and role-scoped API tokens. Secrets are stored only as
-- SHA-256 digests: they are 256-bit random values, so a fast hash is enough (no brute force).

ALTER TABLE vehicles ADD COLUMN device_secret_sha256 TEXT;

CREATE TABLE api_tokens (
    id              TEXT PRIMARY KEY,
    role            TEXT NOT NULL,
    label           TEXT NOT NULL,
    secret_sha256   TEXT NOT NULL UNIQUE,
    created_at_ms   BIGINT NOT NULL,
    revoked_at_ms   BIGINT
);
