-- The search pattern arrives lowercased, with LIKE's wildcards escaped by a
-- backslash. Usernames are ASCII and compared bytewise on both dialects (the
-- PostgreSQL column is COLLATE "C"), so the order is the same everywhere.
SELECT id, username, password_hash, role, disabled, sessions_valid_after, created_at, updated_at
FROM users
WHERE lower(username) LIKE ? ESCAPE '\'
ORDER BY lower(username), id
LIMIT ? OFFSET ?
