-- Page through live sessions, most recently active (latest expiry) first.
--
-- KEYS[1] the global index
-- ARGV[1] now (ms), ARGV[2] session prefix, ARGV[3] first rank, ARGV[4] last
-- rank (inclusive)
--
-- Sessions are read through index members, not KEYS: fine on a single Redis
-- primary (with Sentinel), not on Redis Cluster.
--
-- Returns a flat array: key, data, key, data, ... A member whose session has
-- vanished is dropped from the index and skipped, so a page may come short.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, m in ipairs(redis.call('ZREVRANGE', KEYS[1], ARGV[3], ARGV[4])) do
  local data = redis.call('GET', ARGV[2] .. m)
  if data then
    out[#out + 1] = m
    out[#out + 1] = data
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
