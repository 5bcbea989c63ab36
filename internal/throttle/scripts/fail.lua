-- Record one failure of a throttled key and return the wait now in force
-- (ms). All times come from the caller's clock, so Redis's clock does not
-- matter; Redis only expires the keys, once they are of no further use.
-- MemoryStore.Fail does the same in Go.
--
-- KEYS[1] the key's failures: a hash, n = how many are counted,
--         forget = when they are forgotten (ms)
-- KEYS[2] the key's wait: blocked-until (ms), expiring when the wait ends
-- ARGV[1] now (ms)          ARGV[2] limit (failures before any wait)
-- ARGV[3] window (ms)       ARGV[4] base delay (ms)
-- ARGV[5] max delay (ms)
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local base, max_delay = tonumber(ARGV[4]), tonumber(ARGV[5])

local n = 1
local counted = redis.call('HMGET', KEYS[1], 'n', 'forget')
if counted[1] and counted[2] and tonumber(counted[2]) > now then
  n = tonumber(counted[1]) + 1
end

-- Failures 1..limit are free; then base, doubling, up to max_delay.
local delay = 0
if n > limit then
  delay = math.min(base * 2 ^ (n - limit - 1), max_delay)
end
local blocked_until = now + delay
-- A longer wait already in force (the caller failed a key it did not
-- Check) stands, within the cap.
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current and current > blocked_until then
  blocked_until = math.min(current, now + max_delay)
end

if blocked_until > now then
  redis.call('SET', KEYS[2], string.format('%d', blocked_until),
    'PX', string.format('%d', blocked_until - now))
end
local forget = blocked_until + window
redis.call('HSET', KEYS[1], 'n', string.format('%d', n), 'forget', string.format('%d', forget))
redis.call('PEXPIRE', KEYS[1], string.format('%d', forget - now))
return blocked_until - now
