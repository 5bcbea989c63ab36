-- Re-enables a user; takes (updated_at, id). Enabling never needs the
-- last-administrator check of disable.sql: it can only add an enabled
-- administrator.
UPDATE users SET disabled = FALSE, updated_at = ? WHERE id = ?
