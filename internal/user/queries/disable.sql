-- Disables a user unless that would leave no enabled administrator; takes
-- (updated_at, id). It changes no row both when no user has the ID and when
-- the user is the last enabled administrator: the store tells the two apart.
-- A user already disabled is disabled again (it changes nothing about who
-- can administer), whatever the other administrators' state.
--
-- The check and the write are one statement, but one statement is atomic
-- against concurrent disables only on SQLite, which runs one writer at a
-- time on the whole database. PostgreSQL runs it under
-- lock_admin_changes_postgres.sql first: see that file for why.
UPDATE users SET disabled = TRUE, updated_at = ?
WHERE id = ?
  AND NOT (
    role = 'admin' AND NOT disabled
    AND NOT EXISTS (
      SELECT 1 FROM users AS other
      WHERE other.role = 'admin' AND NOT other.disabled AND other.id <> users.id
    )
  )
