UPDATE users SET sessions_valid_after = ?, updated_at = ? WHERE id = ?
