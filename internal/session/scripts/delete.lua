-- Remove a session and record a tombstone for it in one atomic step, so no
-- commit can slip in between and every later commit sees the tombstone.
--
-- KEYS[1] session key, KEYS[2] its tombstone key
-- ARGV[1] tombstone lifetime in milliseconds (the absolute session lifetime:
--         after it the session could not be valid anyway)
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return 1
