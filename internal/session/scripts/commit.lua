-- Update a session that exists and is not revoked, in one atomic step, so a
-- request that loaded the session before it was revoked, or expired, cannot
-- write it back. New sessions are made only by create.lua.
--
-- KEYS[1] session key, KEYS[2] its tombstone key, KEYS[3] the global index
-- ARGV[1] session data
-- ARGV[2] time to live in milliseconds (> 0 to save; otherwise the session
--         is past its expiry and is removed)
-- ARGV[3] the session's new expiry in ms (its global index score: the
--         index's "most recently active" order)
-- ARGV[4] the session's key (its index member)
--
-- Returns 1 when done, 0 when the session is revoked or gone (nothing
-- written).
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if tonumber(ARGV[2]) <= 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
end
return 1
