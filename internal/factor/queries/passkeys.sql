SELECT id, user_id, name, credential_id, credential, created_at, last_used_at
FROM passkeys
WHERE user_id = ?
ORDER BY created_at, id
