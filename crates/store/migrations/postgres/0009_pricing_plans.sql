-- What trips cost: one plan per city and vehicle type (amounts in the currency's minor units).

CREATE TABLE pricing_plans (
    city_id            TEXT NOT NULL REFERENCES cities (id),
    vehicle_type       TEXT NOT NULL,
    name               TEXT NOT NULL,
    currency           TEXT NOT NULL,
    unlock_fee_minor   BIGINT NOT NULL,
    per_minute_minor   BIGINT NOT NULL,
    per_km_minor       BIGINT NOT NULL,
    daily_cap_minor    BIGINT,
    updated_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (city_id, vehicle_type)
);
