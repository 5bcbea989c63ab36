INSERT INTO users (username, password_hash, role, disabled, created_at, updated_at)
VALUES (?, ?, ?, FALSE, ?, ?)
RETURNING id
