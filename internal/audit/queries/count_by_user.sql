SELECT count(*) FROM audit_events WHERE actor_id = ? OR target_user_id = ?
