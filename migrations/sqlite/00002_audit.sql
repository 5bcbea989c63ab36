-- Audit trail: sign-ins, sign-outs, session revocations and admin actions.
-- Keep in step with postgres/00002_audit.sql.
--
-- Events are history, so they hold no foreign keys: the actor's and target's
-- names are copied as they were at the time, and an event outlives any change
-- to (or removal of) the users it names. actor_id and target_user_id are NULL
-- when there is no such user (an anonymous failed sign-in, a system action).
--
-- occurred_at is TIMESTAMP like the users table (see 00001_users.sql): text in
-- the driver's "sqlite" format, always UTC, so that text order is time order.
-- AUTOINCREMENT keeps ids from ever being reused, like a PostgreSQL identity.

-- +goose Up
CREATE TABLE audit_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at    TIMESTAMP NOT NULL,
    actor_id       INTEGER   NULL,
    actor_name     TEXT      NOT NULL DEFAULT '',
    action         TEXT      NOT NULL CHECK (action <> ''),
    target_user_id INTEGER   NULL,
    target_name    TEXT      NOT NULL DEFAULT '',
    detail         TEXT      NOT NULL DEFAULT '',
    ip             TEXT      NOT NULL DEFAULT '',
    replica        TEXT      NOT NULL DEFAULT ''
);

-- Listing is newest first, id breaking ties between events of the same instant.
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at DESC, id DESC);
-- A user's history is the events they did or that were done to them.
CREATE INDEX audit_events_target_user_id_idx ON audit_events (target_user_id);
CREATE INDEX audit_events_actor_id_idx ON audit_events (actor_id);

-- +goose Down
DROP TABLE audit_events;
