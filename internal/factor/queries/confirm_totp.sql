-- Moves the pending secret into place. Both dialects evaluate every SET
-- expression on the row as it was, so secret gets the old pending_secret.
UPDATE totp_secrets
SET secret = pending_secret, pending_secret = NULL, pending_created_at = NULL, confirmed_at = ?, last_step = ?
WHERE user_id = ? AND pending_secret IS NOT NULL
