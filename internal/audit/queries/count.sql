SELECT count(*) FROM audit_events
