DELETE FROM totp_secrets WHERE user_id = ? RETURNING secret IS NOT NULL
