UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?
