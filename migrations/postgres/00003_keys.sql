-- Keys Hallpass makes for itself (the device-cookie signing key) and keeps
-- here, so that every replica shares them without any configuration.
-- Keep in step with sqlite/00003_keys.sql.

-- +goose Up
CREATE TABLE keys (
    name       TEXT        PRIMARY KEY,
    secret     BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE keys;
