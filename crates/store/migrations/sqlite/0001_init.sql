-- Cities, the vehicle registry and the MDS vehicle event log (SQLite dialect).
-- Timestamps are integer milliseconds since the Unix epoch (UTC), as in MDS.

CREATE TABLE cities (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    timezone        TEXT NOT NULL,
    currency        TEXT NOT NULL,
    operating_area  TEXT,                -- JSON [[lon, lat], ...] or NULL
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE vehicles (
    id              TEXT PRIMARY KEY NOT NULL,
    city_id         TEXT NOT NULL REFERENCES cities (id),
    vehicle_type    TEXT NOT NULL,
    state           TEXT NOT NULL,
    version         INTEGER NOT NULL,    -- bumped by every applied state change
    updated_at_ms   INTEGER NOT NULL,
    created_at_ms   INTEGER NOT NULL
) STRICT;

CREATE INDEX vehicles_by_city ON vehicles (city_id, id);

CREATE TABLE vehicle_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    vehicle_id      TEXT NOT NULL REFERENCES vehicles (id),
    version         INTEGER NOT NULL,    -- the vehicle version this event produced
    from_state      TEXT NOT NULL,
    to_state        TEXT NOT NULL,
    event_types     TEXT NOT NULL,       -- ordered MDS event types, comma-separated
    at_ms           INTEGER NOT NULL,
    UNIQUE (vehicle_id, version)
) STRICT;

CREATE INDEX vehicle_events_by_time ON vehicle_events (at_ms);
