SELECT handle FROM webauthn_handles WHERE user_id = ?
