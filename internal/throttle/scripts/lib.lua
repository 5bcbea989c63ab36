#!lua
-- Helpers shared by the throttle scripts: redis.go puts this file in front
-- of fail.lua, attempt.lua and forgive.lua. The shebang line above makes
-- Redis 7 treat each of them as a script that writes, and so refuse it
-- before it runs when it could not complete its writes: over maxmemory
-- (-OOM), on a read-only replica, or with min-replicas-to-write unmet
-- (-NOREPLICAS). Without it Redis would run the script and fail only at its
-- first write that needs memory, after the reads had decided. All times come from the caller's clock, so
-- Redis's clock does not matter; Redis only expires the keys, once they are
-- of no further use. MemoryStore does the same in Go.
--
-- A key has two Redis keys: its failures (a hash: n = how many are counted,
-- forget = when they are forgotten, ms) and its wait (blocked-until, ms,
-- expiring when the wait ends).

-- record_failure counts one failure of a key and returns the wait now in
-- force (ms). Failures 1..limit are free; then base, doubling, up to
-- max_delay.
local function record_failure(count_key, blocked_key, now, limit, window, base, max_delay)
  local n = 1
  local counted = redis.call('HMGET', count_key, 'n', 'forget')
  if counted[1] and counted[2] and tonumber(counted[2]) > now then
    n = tonumber(counted[1]) + 1
  end
  local delay = 0
  if n > limit then
    delay = math.min(base * 2 ^ (n - limit - 1), max_delay)
  end
  local blocked_until = now + delay
  -- A longer wait already in force (the caller failed a key it did not
  -- Check) stands, within the cap.
  local current = tonumber(redis.call('GET', blocked_key) or '0')
  if current and current > blocked_until then
    blocked_until = math.min(current, now + max_delay)
  end
  if blocked_until > now then
    redis.call('SET', blocked_key, string.format('%d', blocked_until),
      'PX', string.format('%d', blocked_until - now))
  end
  local forget = blocked_until + window
  redis.call('HSET', count_key, 'n', string.format('%d', n), 'forget', string.format('%d', forget))
  redis.call('PEXPIRE', count_key, string.format('%d', forget - now))
  return blocked_until - now
end

