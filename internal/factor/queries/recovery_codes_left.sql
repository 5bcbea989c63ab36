SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL
