-- Marks a code used only if it is unused: one statement, so of concurrent
-- uses of a code exactly one changes the row (see use_totp_step.sql).
UPDATE recovery_codes SET used_at = ?
WHERE user_id = ? AND code_hash = ? AND used_at IS NULL
