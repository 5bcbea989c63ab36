-- What one user has enrolled, in one round trip; the three arguments are
-- the same user ID.
SELECT
    (SELECT count(*) FROM totp_secrets WHERE user_id = ? AND secret IS NOT NULL),
    (SELECT count(*) FROM passkeys WHERE user_id = ?),
    (SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL)
