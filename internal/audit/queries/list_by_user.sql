-- The user's events: those they did (actor) or that were done to them
-- (target); the two indexes on actor_id and target_user_id serve the OR.
SELECT id, occurred_at, actor_id, actor_name, action, target_user_id, target_name, detail, ip, replica
FROM audit_events
WHERE actor_id = ? OR target_user_id = ?
ORDER BY occurred_at DESC, id DESC
LIMIT ? OFFSET ?
