-- As reseal_pending_totp.sql, for the confirmed secret.
UPDATE totp_secrets SET secret = ? WHERE user_id = ? AND secret = ?
