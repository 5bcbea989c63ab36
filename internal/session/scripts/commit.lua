-- Save a session unless it has been revoked, in one atomic step, so a request
-- that loaded the session before a revocation cannot write it back.
--
-- KEYS[1] session key, KEYS[2] its tombstone key
-- ARGV[1] session data, ARGV[2] time to live in milliseconds (> 0 to save;
--         otherwise the session is past its expiry and is removed)
--
-- Returns 1 when done, 0 when the session is revoked (nothing written).
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local ttl = tonumber(ARGV[2])
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
end
return 1
