-- The notification outbox: a message is written in the same step as what it announces and
-- delivered by a worker with retries. One message per event key (nothing is sent twice for the
-- same event). Riders choose channels in notification_preferences.

CREATE TABLE outbox (
    id                  TEXT PRIMARY KEY NOT NULL,
    event_key           TEXT NOT NULL UNIQUE,
    user_id             TEXT NOT NULL,
    channel             TEXT NOT NULL,      -- webhook, email, push
    template            TEXT NOT NULL,      -- receipt, reservation_expired, kyc_result
    payload             TEXT NOT NULL,      -- JSON the template renders
    state               TEXT NOT NULL,      -- pending, sent, failed
    attempts            BIGINT NOT NULL,
    next_attempt_at_ms  BIGINT NOT NULL,
    last_error          TEXT,
    created_at_ms       BIGINT NOT NULL,
    sent_at_ms          BIGINT
);

CREATE INDEX outbox_due ON outbox (state, next_attempt_at_ms);

CREATE TABLE notification_preferences (
    user_id      TEXT NOT NULL REFERENCES users (id),
    channel      TEXT NOT NULL,
    enabled      BIGINT NOT NULL,   -- 0 or 1
    address      TEXT,               -- webhook URL or e-mail address
    PRIMARY KEY (user_id, channel)
);
