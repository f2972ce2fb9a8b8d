-- Fleet intelligence: riders' demand per H3 zone and 15-minute slot (what the forecaster learns
-- from; a search is a request, one that found no vehicle is demand the fleet lost; trips that end
-- in the zone are its returns), and each
-- city's incentive spending per local day (checked and added in one statement, so processes
-- sharing the database never overspend the budget together).

CREATE TABLE demand_slots (
    city_id      TEXT NOT NULL REFERENCES cities (id),
    slot_ms      BIGINT NOT NULL,    -- UTC ms of the slot's start
    zone         TEXT NOT NULL,       -- H3 cell
    searches     BIGINT NOT NULL,
    unmet        BIGINT NOT NULL,
    returns      BIGINT NOT NULL,    -- trips that ended here
    PRIMARY KEY (city_id, slot_ms, zone)
);

CREATE TABLE incentive_spend (
    city_id      TEXT NOT NULL REFERENCES cities (id),
    day          BIGINT NOT NULL,    -- local day number (days since 1970-01-01)
    spent_minor  BIGINT NOT NULL,
    PRIMARY KEY (city_id, day)
);

-- The dynamic price a trip was unlocked at (multiplier, incentives, reason), JSON: the fare at
-- the end follows what the rider was shown.
ALTER TABLE bookings ADD COLUMN pricing TEXT;

-- Weather per city and hour, observed or forecast (a weather feed puts it): covariates of the
-- demand forecast. Unknown values are NULL.
CREATE TABLE weather_hours (
    city_id      TEXT NOT NULL REFERENCES cities (id),
    hour_ms      BIGINT NOT NULL,    -- UTC ms of the hour's start
    rain         BIGINT,             -- 0 or 1
    temp_c       DOUBLE PRECISION,
    PRIMARY KEY (city_id, hour_ms)
);

-- A city's events calendar (concerts, matches): crowds that look for vehicles when they end,
-- a covariate of the demand forecast.
CREATE TABLE city_events (
    id             TEXT PRIMARY KEY,
    city_id        TEXT NOT NULL REFERENCES cities (id),
    name           TEXT NOT NULL,
    lat            DOUBLE PRECISION NOT NULL,
    lon            DOUBLE PRECISION NOT NULL,
    ends_at_ms     BIGINT NOT NULL,
    egress_ms      BIGINT NOT NULL,
    riders         DOUBLE PRECISION NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);

CREATE INDEX city_events_by_end ON city_events (city_id, ends_at_ms);
