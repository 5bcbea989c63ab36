SELECT id, user_id, name, credential_id, credential, created_at, last_used_at
FROM passkeys
WHERE credential_id = ?
