-- Invalidates every user's sessions created before a time; takes
-- (sessions_valid_after, updated_at, sessions_valid_after). One statement
-- over the whole table: "sign out everyone" must leave no user behind, and a
-- single UPDATE does that atomically on both dialects.
--
-- The time only moves forward, as the session store's record of a whole-user
-- revocation does: a user whose sessions were already revoked at a later
-- time (by a replica whose clock is ahead) keeps that later time. Times are
-- stored in UTC (text in a fixed format on SQLite, TIMESTAMPTZ on
-- PostgreSQL), so the comparison is by instant on both.
UPDATE users SET sessions_valid_after = ?, updated_at = ?
WHERE sessions_valid_after IS NULL OR sessions_valid_after < ?
