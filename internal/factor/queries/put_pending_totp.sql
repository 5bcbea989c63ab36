-- Sets the pending secret, creating the row or replacing an earlier pending
-- secret; a confirmed secret and its last step are left alone.
INSERT INTO totp_secrets (user_id, pending_secret, pending_created_at, last_step)
VALUES (?, ?, ?, 0)
ON CONFLICT (user_id) DO UPDATE
SET pending_secret = excluded.pending_secret, pending_created_at = excluded.pending_created_at
