-- Writes a secret re-sealed under the current key back, only if the row
-- still holds the value that was read: a newer secret is never overwritten.
UPDATE totp_secrets SET pending_secret = ? WHERE user_id = ? AND pending_secret = ?
