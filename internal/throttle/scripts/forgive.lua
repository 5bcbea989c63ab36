-- Give back one attempt that attempt.lua counted and that turned out to
-- succeed: the count drops by one, and a wait that the count no longer
-- justifies (it is within the limit again) is lifted.
--
-- KEYS[1] the key's failures   KEYS[2] the key's wait
-- ARGV[1] now (ms)             ARGV[2] limit
--
-- Returns the count left.
local counted = redis.call('HMGET', KEYS[1], 'n', 'forget')
if not (counted[1] and counted[2]) or tonumber(counted[2]) <= tonumber(ARGV[1]) then
  return 0
end
local n = tonumber(counted[1]) - 1
if n <= 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
redis.call('HSET', KEYS[1], 'n', string.format('%d', n))
if n <= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[2])
end
return n
