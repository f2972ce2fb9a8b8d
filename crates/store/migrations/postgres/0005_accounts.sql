-- People who sign in: riders (self sign-up), staff and admins (created by an admin).
-- Passwords are kept only as argon2id PHC strings. Refresh tokens only as SHA-256 digests;
-- each login starts a family, and each refresh uses one token and issues the next in the family.
-- A token used twice means it was stolen: the whole family is revoked.

CREATE TABLE users (
    id              TEXT PRIMARY KEY NOT NULL,
    email           TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    token_sha256    TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    family_id       TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    expires_at_ms   BIGINT NOT NULL,
    used_at_ms      BIGINT,
    revoked_at_ms   BIGINT
);

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
