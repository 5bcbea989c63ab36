SELECT secret FROM totp_secrets WHERE user_id = ?
