-- RETURNING says, code by code, whether it was unused, so the count is of
-- exactly the rows deleted.
DELETE FROM recovery_codes WHERE user_id = ? RETURNING used_at IS NULL
