-- The trip part of a booking: when it started and ended, how far it went, and its receipt
-- (the itemised fare as JSON). States now also: unlocking, on_trip, ended, failed.

ALTER TABLE bookings ADD COLUMN started_at_ms BIGINT;
ALTER TABLE bookings ADD COLUMN ended_at_ms BIGINT;
ALTER TABLE bookings ADD COLUMN start_odometer_m BIGINT;
ALTER TABLE bookings ADD COLUMN distance_m BIGINT;
ALTER TABLE bookings ADD COLUMN receipt TEXT;
ALTER TABLE bookings ADD COLUMN detail TEXT;
