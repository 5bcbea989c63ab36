DELETE FROM passkeys WHERE id = ? AND user_id = ?
