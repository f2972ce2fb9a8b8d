-- Payments, one row per idempotency key (a retried call finds the first outcome), and the
-- double-entry ledger: every journal's postings sum to zero per currency.

CREATE TABLE payments (
    idempotency_key  TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL,
    booking_id       TEXT,
    kind             TEXT NOT NULL,      -- charge, refund, top_up
    amount_minor     INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    state            TEXT NOT NULL,      -- succeeded, failed
    provider         TEXT,
    provider_ref     TEXT,
    detail           TEXT,
    created_at_ms    INTEGER NOT NULL
) STRICT;

CREATE TABLE ledger_postings (
    journal_id       TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    account          TEXT NOT NULL,
    amount_minor     INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    at_ms            INTEGER NOT NULL,
    PRIMARY KEY (journal_id, seq)
) STRICT;

CREATE INDEX ledger_by_account ON ledger_postings (account, currency);
