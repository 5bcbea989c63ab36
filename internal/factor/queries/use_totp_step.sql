-- Accepts a step only if it is later than the last one accepted. One
-- statement, so of concurrent uses of a step (from any replica) the row lock
-- lets exactly one through: on PostgreSQL the others wait for it, re-check
-- last_step < ? against its committed value and match nothing; on SQLite
-- writers run one at a time.
UPDATE totp_secrets SET last_step = ?
WHERE user_id = ? AND secret IS NOT NULL AND last_step < ?
