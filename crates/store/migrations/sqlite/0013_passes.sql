-- Passes: plans a city sells (a monthly commuter pass, say) and the passes riders hold.
-- Flags are 0/1 integers so both dialects share the SQL.

CREATE TABLE pass_plans (
    id                TEXT PRIMARY KEY NOT NULL,
    city_id           TEXT NOT NULL REFERENCES cities (id),
    name              TEXT NOT NULL,
    price_minor       INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    valid_days        INTEGER NOT NULL,
    vehicle_types     TEXT NOT NULL,       -- comma-separated: scooter,ebike
    free_unlock       INTEGER NOT NULL,    -- 0 or 1
    free_minutes      INTEGER NOT NULL,    -- per trip
    active            INTEGER NOT NULL,    -- 0: no longer sold (held passes stay valid)
    updated_at_ms     INTEGER NOT NULL
) STRICT;

CREATE INDEX pass_plans_by_city ON pass_plans (city_id, id);

CREATE TABLE rider_passes (
    id                TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id),
    plan_id           TEXT NOT NULL REFERENCES pass_plans (id),
    starts_at_ms      INTEGER NOT NULL,
    ends_at_ms        INTEGER NOT NULL,
    payment_key       TEXT NOT NULL UNIQUE, -- one pass per purchase (its idempotency key)
    created_at_ms     INTEGER NOT NULL
) STRICT;

CREATE INDEX rider_passes_by_user ON rider_passes (user_id, ends_at_ms);
