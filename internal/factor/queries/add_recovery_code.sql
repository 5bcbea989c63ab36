INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)
