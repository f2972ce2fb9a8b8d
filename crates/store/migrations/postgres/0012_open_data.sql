-- Open data (GBFS, MDS): where each vehicle event happened and which trip it belongs to, the
-- bearer tokens issued to agencies for the MDS Provider API, and system alerts per city.

ALTER TABLE vehicle_events ADD COLUMN lat DOUBLE PRECISION;
ALTER TABLE vehicle_events ADD COLUMN lon DOUBLE PRECISION;
ALTER TABLE vehicle_events ADD COLUMN trip_id TEXT;
-- Late events (older than the vehicle's current state, which MDS accepts) are logged without a
-- version of their own: one event per version holds only for applied events.
ALTER TABLE vehicle_events ADD COLUMN late BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE vehicle_events DROP CONSTRAINT vehicle_events_vehicle_id_version_key;
CREATE UNIQUE INDEX vehicle_events_one_per_version ON vehicle_events (vehicle_id, version) WHERE NOT late;
-- Lookups by vehicle: its event of a version (any lateness), its events in a time window.
CREATE INDEX vehicle_events_by_vehicle_version ON vehicle_events (vehicle_id, version);
CREATE INDEX vehicle_events_by_vehicle_time ON vehicle_events (vehicle_id, at_ms);

CREATE INDEX bookings_by_trip_time ON bookings (city_id, started_at_ms);
-- Staff lists of bookings, newest first (by city, vehicle or rider).
CREATE INDEX bookings_by_created ON bookings (created_at_ms);
CREATE INDEX bookings_by_vehicle ON bookings (vehicle_id, created_at_ms);
CREATE INDEX bookings_by_user ON bookings (user_id, created_at_ms);

CREATE TABLE mds_tokens (
    id              TEXT PRIMARY KEY,  -- the JWT's jti
    agency          TEXT NOT NULL,
    city_id         TEXT NOT NULL REFERENCES cities (id),
    created_at_ms   BIGINT NOT NULL,
    expires_at_ms   BIGINT NOT NULL,
    revoked_at_ms   BIGINT
);

CREATE TABLE system_alerts (
    id              TEXT PRIMARY KEY,
    city_id         TEXT NOT NULL REFERENCES cities (id),
    alert_type      TEXT NOT NULL,               -- GBFS: system_closure, other, ...
    summary         TEXT NOT NULL,
    description     TEXT,
    url             TEXT,
    starts_at_ms    BIGINT,
    ends_at_ms      BIGINT,
    updated_at_ms   BIGINT NOT NULL
);

CREATE INDEX system_alerts_by_city ON system_alerts (city_id, id);
