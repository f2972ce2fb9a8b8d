-- Open data (GBFS, MDS): where each vehicle event happened and which trip it belongs to, the
-- bearer tokens issued to agencies for the MDS Provider API, and system alerts per city.

ALTER TABLE vehicle_events ADD COLUMN lat REAL;
ALTER TABLE vehicle_events ADD COLUMN lon REAL;
ALTER TABLE vehicle_events ADD COLUMN trip_id TEXT;

CREATE INDEX bookings_by_trip_time ON bookings (city_id, started_at_ms);

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
