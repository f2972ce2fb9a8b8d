-- Open data (GBFS, MDS): where each vehicle event happened and which trip it belongs to, the
-- bearer tokens issued to agencies for the MDS Provider API, and system alerts per city.

-- Late events (older than the vehicle's current state, which MDS accepts) are logged without
-- a version of their own, so one event per version holds only for applied events: the table is
-- rebuilt with that as a partial unique index (SQLite cannot drop a table constraint).
CREATE TABLE vehicle_events_v2 (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    vehicle_id      TEXT NOT NULL REFERENCES vehicles (id),
    version         INTEGER NOT NULL,    -- the version this event produced (late: the current one)
    from_state      TEXT NOT NULL,
    to_state        TEXT NOT NULL,
    event_types     TEXT NOT NULL,       -- ordered MDS event types, comma-separated
    at_ms           INTEGER NOT NULL,
    lat             REAL,                -- where the vehicle was, when known
    lon             REAL,
    trip_id         TEXT,                -- the booking it belongs to
    late            INTEGER NOT NULL DEFAULT 0
) STRICT;

INSERT INTO vehicle_events_v2 (seq, vehicle_id, version, from_state, to_state, event_types, at_ms)
    SELECT seq, vehicle_id, version, from_state, to_state, event_types, at_ms FROM vehicle_events;
DROP TABLE vehicle_events;
ALTER TABLE vehicle_events_v2 RENAME TO vehicle_events;
CREATE UNIQUE INDEX vehicle_events_one_per_version ON vehicle_events (vehicle_id, version) WHERE late = 0;
-- Lookups by vehicle: its event of a version (any lateness), its events in a time window.
CREATE INDEX vehicle_events_by_vehicle_version ON vehicle_events (vehicle_id, version);
CREATE INDEX vehicle_events_by_vehicle_time ON vehicle_events (vehicle_id, at_ms);
CREATE INDEX vehicle_events_by_time ON vehicle_events (at_ms);

CREATE INDEX bookings_by_trip_time ON bookings (city_id, started_at_ms);
-- Staff lists of bookings, newest first (by city, vehicle or rider).
CREATE INDEX bookings_by_created ON bookings (created_at_ms);
CREATE INDEX bookings_by_vehicle ON bookings (vehicle_id, created_at_ms);
CREATE INDEX bookings_by_user ON bookings (user_id, created_at_ms);

CREATE TABLE mds_tokens (
    id              TEXT PRIMARY KEY NOT NULL,  -- the JWT's jti
    agency          TEXT NOT NULL,
    city_id         TEXT NOT NULL REFERENCES cities (id),
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    revoked_at_ms   INTEGER
) STRICT;

CREATE TABLE system_alerts (
    id              TEXT PRIMARY KEY NOT NULL,
    city_id         TEXT NOT NULL REFERENCES cities (id),
    alert_type      TEXT NOT NULL,               -- GBFS: system_closure, other, ...
    summary         TEXT NOT NULL,
    description     TEXT,
    url             TEXT,
    starts_at_ms    INTEGER,
    ends_at_ms      INTEGER,
    updated_at_ms   INTEGER NOT NULL
) STRICT;

CREATE INDEX system_alerts_by_city ON system_alerts (city_id, id);
