-- List one user's live sessions, pruning the index as it goes.
--
-- KEYS[1] the user's index, KEYS[2] the global index
-- ARGV[1] now (ms), ARGV[2] session prefix
--
-- Sessions are read through index members, not KEYS: they carry the
-- index's shard tag (see lib.lua).
--
-- Returns a flat array: key, data, key, data, ...
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local data = redis.call('GET', ARGV[2] .. m)
  if data then
    out[#out + 1] = m
    out[#out + 1] = data
  else
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZREM', KEYS[2], m)
  end
end
return out
