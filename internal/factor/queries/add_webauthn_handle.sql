-- The first insert wins; later ones, on any replica, leave it alone. The
-- conflict target is the user only: a clash of two random 64-byte handles
-- is an error, not a silent no-op.
INSERT INTO webauthn_handles (user_id, handle) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING
