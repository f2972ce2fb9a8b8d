-- Bookings: a rider's hold on a vehicle, then the trip. At most one active booking per vehicle
-- and per rider, enforced by partial unique indexes (the database decides races, not the API).

CREATE TABLE bookings (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    vehicle_id      TEXT NOT NULL REFERENCES vehicles (id),
    city_id         TEXT NOT NULL REFERENCES cities (id),
    state           TEXT NOT NULL,       -- reserved, cancelled, expired (trip states come next)
    created_at_ms   BIGINT NOT NULL,
    hold_until_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);

CREATE UNIQUE INDEX bookings_one_active_per_vehicle ON bookings (vehicle_id)
    WHERE state IN ('reserved', 'unlocking', 'on_trip', 'paused');
CREATE UNIQUE INDEX bookings_one_active_per_user ON bookings (user_id)
    WHERE state IN ('reserved', 'unlocking', 'on_trip', 'paused');
CREATE INDEX bookings_holds ON bookings (state, hold_until_ms);
