UPDATE passkeys SET credential = ?, last_used_at = ? WHERE id = ?
