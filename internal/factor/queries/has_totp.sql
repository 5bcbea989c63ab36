SELECT count(*) FROM totp_secrets WHERE user_id = ? AND secret IS NOT NULL
