-- Reserve one attempt of a throttled key, atomically: if a wait is in
-- force, return it (a positive number of ms) with how many attempts this
-- wait has refused, this one included, and count nothing else; otherwise
-- count the attempt as a failure now, before the caller checks the
-- password, and return {0, 0}. Counting first is what makes the limit hold under
-- concurrency: parallel attempts each take their own place in the count,
-- so no more of them reach the password check than the policy allows. The
-- caller gives a successful attempt back with forgive.lua.
--
-- KEYS[1] the key's failures (also: refused = attempts the current wait
--         refused)             KEYS[2] the key's wait
-- ARGV as in fail.lua.
local now, max_delay = tonumber(ARGV[1]), tonumber(ARGV[5])
local blocked_until = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked_until and blocked_until > now then
  local refused = redis.call('HINCRBY', KEYS[1], 'refused', 1)
  return { math.min(blocked_until - now, max_delay), refused }
end
record_failure(KEYS[1], KEYS[2], now, tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), max_delay)
redis.call('HDEL', KEYS[1], 'refused')
return { 0, 0 }
