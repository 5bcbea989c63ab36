-- Second factors (issue 14). Keep in step with postgres/00004_factors.sql.
--
-- Times are TIMESTAMP, as in 00001_users.sql: text in the driver's "sqlite"
-- format, always UTC. Every table refers to users with ON DELETE CASCADE, so
-- a user's factors go with the user (database.Open turns foreign keys on).
-- AUTOINCREMENT keeps passkey ids from ever being reused, like a PostgreSQL
-- identity.

-- +goose Up

-- One row per user with an authenticator app, confirmed or being set up.
-- secret and pending_secret are sealed with secretbox (purpose
-- "totp-secret") under HALLPASS_SECRET_KEY, never stored in clear.
-- last_step is the last 30-second step a code was accepted for: a code is
-- accepted only for a later step, in one conditional UPDATE, so a replayed
-- code fails on every replica.
CREATE TABLE totp_secrets (
    user_id            INTEGER   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret             BLOB      NULL,
    pending_secret     BLOB      NULL,
    pending_created_at TIMESTAMP NULL,
    confirmed_at       TIMESTAMP NULL,
    last_step          BIGINT    NOT NULL DEFAULT 0
);

-- One-time recovery codes, as SHA-256 hashes of the codes.
CREATE TABLE recovery_codes (
    user_id    INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BLOB      NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP NULL,
    UNIQUE (user_id, code_hash)
);

-- Each user's WebAuthn user handle: random, so it says nothing about the
-- user ID, and made once.
CREATE TABLE webauthn_handles (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    handle  BLOB    NOT NULL UNIQUE
);

-- Registered passkeys. credential is the WebAuthn library's record as JSON.
CREATE TABLE passkeys (
    id            INTEGER   PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT      NOT NULL,
    credential_id BLOB      NOT NULL UNIQUE,
    credential    BLOB      NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    last_used_at  TIMESTAMP NULL
);

CREATE INDEX passkeys_user_id_idx ON passkeys (user_id, created_at, id);

-- +goose Down
DROP TABLE passkeys;
DROP TABLE webauthn_handles;
DROP TABLE recovery_codes;
DROP TABLE totp_secrets;
