-- Cities, the vehicle registry and the MDS vehicle event log (PostgreSQL dialect).
-- Timestamps are integer milliseconds since the Unix epoch (UTC), as in MDS.

CREATE TABLE cities (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    timezone        TEXT NOT NULL,
    currency        TEXT NOT NULL,
    operating_area  TEXT,                -- JSON [[lon, lat], ...] or NULL
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE vehicles (
    id              TEXT PRIMARY KEY,
    city_id         TEXT NOT NULL REFERENCES cities (id),
    vehicle_type    TEXT NOT NULL,
    state           TEXT NOT NULL,
    version         BIGINT NOT NULL,     -- bumped by every applied state change
    updated_at_ms   BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);

CREATE INDEX vehicles_by_city ON vehicles (city_id, id);

CREATE TABLE vehicle_events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vehicle_id      TEXT NOT NULL REFERENCES vehicles (id),
    version         BIGINT NOT NULL,     -- the vehicle version this event produced
    from_state      TEXT NOT NULL,
    to_state        TEXT NOT NULL,
    event_types     TEXT NOT NULL,       -- ordered MDS event types, comma-separated
    at_ms           BIGINT NOT NULL,
    UNIQUE (vehicle_id, version)
);

CREATE INDEX vehicle_events_by_time ON vehicle_events (at_ms);
