-- End the session a new one replaces when the two live in different shards
-- (the request's session was another user's: see ShardTags), so create.lua
-- cannot reach it. The new session is stored first; this script then ends
-- the replaced one if it is still live, leaving a tombstone as a sign-out
-- does, or reports that it was not, and the caller deletes the new session.
--
-- KEYS[1] session key, KEYS[2] its tombstone key, KEYS[3] the global index
-- of its shard
-- ARGV[1] tombstone lifetime (ms)  ARGV[2] end reason
-- ARGV[3] the session's key (its index member)
--
-- Returns 1 when it ended the session, 0 when it was revoked or gone.
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
