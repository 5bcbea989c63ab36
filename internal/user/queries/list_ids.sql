-- Pages through every user's ID in ascending order; takes (after ID, limit).
-- Keyset paging on the primary key: each page costs the same however deep
-- it is, where OFFSET would read and skip every earlier row.
SELECT id FROM users
WHERE id > ?
ORDER BY id
LIMIT ?
