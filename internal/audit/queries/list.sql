-- Walks audit_events_occurred_at_idx.
SELECT id, occurred_at, actor_id, actor_name, action, target_user_id, target_name, detail, ip, replica
FROM audit_events
ORDER BY occurred_at DESC, id DESC
LIMIT ? OFFSET ?
