-- Users who can sign in. Keep in step with sqlite/00001_users.sql.
--
-- username is COLLATE "C" so that ordering and LIKE compare bytes, as SQLite
-- does, whatever locale the cluster was created with: List returns the same
-- order on both dialects. Usernames are ASCII, so lower() agrees too.
--
-- Times are TIMESTAMPTZ (microsecond precision); the store writes them in UTC,
-- truncated to microseconds, so they round-trip exactly.

-- +goose Up
CREATE TABLE users (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username             TEXT COLLATE "C" NOT NULL,
    password_hash        TEXT        NOT NULL,
    role                 TEXT        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled             BOOLEAN     NOT NULL DEFAULT FALSE,
    -- Sessions created before this instant are invalid (durable revocation);
    -- NULL when the user's sessions were never revoked.
    sessions_valid_after TIMESTAMPTZ NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

-- Usernames are unique case-insensitively; lookups use lower(username) too.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- +goose Down
DROP TABLE users;
