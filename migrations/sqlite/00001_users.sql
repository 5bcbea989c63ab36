-- Users who can sign in. Keep in step with postgres/00001_users.sql.
--
-- Times are declared TIMESTAMP so that modernc.org/sqlite scans them into
-- time.Time. They are stored as text in the driver's "sqlite" time format
-- (database.Open sets _time_format=sqlite), e.g. "2024-05-01 12:00:00.123456+00:00":
-- readable with the sqlite3 shell, exact to the nanosecond, and, because the
-- store always writes UTC, ordered correctly by plain text comparison.
--
-- AUTOINCREMENT keeps ids from ever being reused, like a PostgreSQL identity.

-- +goose Up
CREATE TABLE users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    username             TEXT      NOT NULL,
    password_hash        TEXT      NOT NULL,
    role                 TEXT      NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled             BOOLEAN   NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    -- Sessions created before this instant are invalid (durable revocation);
    -- NULL when the user's sessions were never revoked.
    sessions_valid_after TIMESTAMP NULL,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL
);

-- Usernames are unique case-insensitively; lookups use lower(username) too.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- +goose Down
DROP TABLE users;
