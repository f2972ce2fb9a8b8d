-- Commands sent to vehicles and their outcome. A late acknowledgement never changes a
-- timed-out command's state; it is noted in late_ack_at_ms.

CREATE TABLE vehicle_commands (
    id              TEXT PRIMARY KEY NOT NULL,
    vehicle_id      TEXT NOT NULL REFERENCES vehicles (id),
    kind            TEXT NOT NULL,       -- JSON, e.g. {"command":"set_speed_limit","speed_limit_kmh":15}
    state           TEXT NOT NULL,       -- pending, acked, failed, timed_out
    detail          TEXT,
    created_at_ms   INTEGER NOT NULL,
    deadline_ms     INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    late_ack_at_ms  INTEGER
) STRICT;

CREATE INDEX vehicle_commands_by_vehicle ON vehicle_commands (vehicle_id, created_at_ms);
CREATE INDEX vehicle_commands_pending ON vehicle_commands (state, deadline_ms);
