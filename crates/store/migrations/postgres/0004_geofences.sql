-- Geofences per city: operating areas, no-parking, no-riding, slow zones, parking hubs.

CREATE TABLE geofences (
    id              TEXT PRIMARY KEY,
    city_id         TEXT NOT NULL REFERENCES cities (id),
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    speed_limit_kmh BIGINT,
    ring            TEXT NOT NULL,       -- JSON [[lon, lat], ...], open
    updated_at_ms   BIGINT NOT NULL
);

CREATE INDEX geofences_by_city ON geofences (city_id, id);
