SELECT user_id FROM webauthn_handles WHERE handle = ?
