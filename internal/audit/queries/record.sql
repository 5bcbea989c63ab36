INSERT INTO audit_events
    (occurred_at, actor_id, actor_name, action, target_user_id, target_name, detail, ip, replica)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
