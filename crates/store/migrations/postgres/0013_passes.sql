-- Passes: plans a city sells (a monthly commuter pass, say) and the passes riders hold.
-- Flags are 0/1 integers so both dialects share the SQL.

CREATE TABLE pass_plans (
    id                TEXT PRIMARY KEY,
    city_id           TEXT NOT NULL REFERENCES cities (id),
    name              TEXT NOT NULL,
    price_minor       BIGINT NOT NULL,
    currency          TEXT NOT NULL,
    valid_days        BIGINT NOT NULL,
    vehicle_types     TEXT NOT NULL,       -- comma-separated: scooter,ebike
    free_unlock       BIGINT NOT NULL,    -- 0 or 1
    free_minutes      BIGINT NOT NULL,    -- per trip
    active            BIGINT NOT NULL,    -- 0: no longer sold (held passes stay valid)
    updated_at_ms     BIGINT NOT NULL
);

CREATE INDEX pass_plans_by_city ON pass_plans (city_id, id);

CREATE TABLE rider_passes (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id),
    plan_id           TEXT NOT NULL REFERENCES pass_plans (id),
    starts_at_ms      BIGINT NOT NULL,
    ends_at_ms        BIGINT NOT NULL,
    payment_key       TEXT NOT NULL UNIQUE, -- one pass per purchase (its idempotency key)
    created_at_ms     BIGINT NOT NULL
);

CREATE INDEX rider_passes_by_user ON rider_passes (user_id, ends_at_ms);
