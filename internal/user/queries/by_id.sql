SELECT id, username, password_hash, role, disabled, sessions_valid_after, created_at, updated_at
FROM users
WHERE id = ?
