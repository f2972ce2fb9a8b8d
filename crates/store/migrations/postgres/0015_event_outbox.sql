-- The transactional outbox of domain events: a store change and its event are written in one
-- transaction; the platform's relay publishes the rows to the event bus (deduplicated there by
-- id) and deletes them. Rows are the store's own format: the event as JSON.
CREATE TABLE event_outbox (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id       TEXT NOT NULL UNIQUE,    -- the event's id (UUID)
    city_id  TEXT,                    -- the event's city, if any
    at_ms    BIGINT NOT NULL,         -- when it happened
    event    TEXT NOT NULL            -- mobility_core::DomainEvent as JSON
);
