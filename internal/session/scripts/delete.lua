-- Remove a session and record a tombstone for it in one atomic step, so no
-- commit can slip in between and a later create of the key sees the
-- tombstone. The session leaves the global index now; its user's index entry
-- is pruned the next time that index is read, since Delete does not know the
-- user.
--
-- KEYS[1] session key, KEYS[2] its tombstone key, KEYS[3] the global index
-- ARGV[1] tombstone lifetime in milliseconds (the absolute session lifetime:
--         after it the session could not be valid anyway)
-- ARGV[2] end reason the tombstone records
-- ARGV[3] the session's key (its index member)
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
