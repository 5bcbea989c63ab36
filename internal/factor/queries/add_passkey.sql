INSERT INTO passkeys (user_id, name, credential_id, credential, created_at, last_used_at)
VALUES (?, ?, ?, ?, ?, ?)
RETURNING id
