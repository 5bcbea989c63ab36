-- Create a signed-in session: refuse a revoked or taken key, a replaced
-- session that is no longer live, or an authentication older than the user's
-- latest whole-user revocation; end the replaced session; enforce the user's
-- concurrent-session limit; store and index the session. All in one atomic
-- step, so replicas signing the same user in at once cannot together exceed
-- the limit, and a revocation cannot fall between the checks and the write.
--
-- KEYS[1] session key, KEYS[2] its tombstone key, KEYS[3] the user's index,
-- KEYS[4] the global index, KEYS[5] the user's revocation time
-- ARGV[1] now (ms)                ARGV[2] session prefix
-- ARGV[3] tombstone prefix        ARGV[4] the session's key (index member)
-- ARGV[5] session data            ARGV[6] session time to live (ms, > 0)
-- ARGV[7] absolute expiry (ms): the user index score, fixed for life
-- ARGV[8] current expiry (ms): the global index score, refreshed by commits
-- ARGV[9] limit (0: none)         ARGV[10] policy: evict-oldest or reject
-- ARGV[11] tombstone time to live (ms) ARGV[12] end reason for evictions
-- ARGV[13] key of the session this one replaces ('' for none)
-- ARGV[14] when the user authenticated (ms)
-- ARGV[15] end reason for the replaced session
--
-- The replaced session is reached through its key in ARGV, like the index
-- members (see lib.lua): the store passes it only when it carries the same
-- shard tag, and ends one in another shard itself (end_replaced.lua).
--
-- Returns {'ok', evicted keys...}, {'revoked'}, {'in-use'} or {'full'}.
local now = tonumber(ARGV[1])
local session_prefix, tombstone_prefix = ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return { 'revoked' }
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return { 'in-use' }
end
-- The request's own session must still be there: if it was revoked while
-- the request was in flight, the request signs nobody in.
local replaced = ARGV[13]
if replaced ~= '' and (redis.call('EXISTS', tombstone_prefix .. replaced) == 1
    or redis.call('EXISTS', session_prefix .. replaced) == 0) then
  return { 'revoked' }
end
-- Authenticated before the user's latest whole-user revocation: void. Equal
-- milliseconds are accepted (the rule is spelt out on session.Origin).
local revoked_at = redis.call('GET', KEYS[5])
if revoked_at and tonumber(ARGV[14]) < tonumber(revoked_at) then
  return { 'revoked' }
end

redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
-- The replaced session makes way for the new one: it does not count.
local live = {}
for _, e in ipairs(prune_user(KEYS[3], KEYS[4], now, session_prefix)) do
  if e[1] ~= replaced then
    live[#live + 1] = e
  end
end
local max = tonumber(ARGV[9])
if max > 0 and #live >= max and ARGV[10] ~= 'evict-oldest' then
  return { 'full' } -- before anything is written (pruning aside)
end
if replaced ~= '' then
  -- Its user's index may be another user's; that entry is pruned when read.
  end_session(replaced, KEYS[3], KEYS[4], session_prefix, tombstone_prefix, ARGV[15], ARGV[11])
end
local result = { 'ok' }
if max > 0 and #live >= max then
  -- Least recently active first: lowest global score (a member missing from
  -- the global index counts as oldest), then earliest absolute expiry, then
  -- key, so the choice is the same on every run.
  local order = {}
  for i, e in ipairs(live) do
    local score = redis.call('ZSCORE', KEYS[4], e[1])
    order[i] = { key = e[1], active = score and tonumber(score) or -math.huge, absolute = e[2] }
  end
  table.sort(order, function(a, b)
    if a.active ~= b.active then return a.active < b.active end
    if a.absolute ~= b.absolute then return a.absolute < b.absolute end
    return a.key < b.key
  end)
  for i = 1, #live - max + 1 do
    end_session(order[i].key, KEYS[3], KEYS[4], session_prefix, tombstone_prefix, ARGV[12], ARGV[11])
    result[#result + 1] = order[i].key
  end
end

redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[8], ARGV[4])
-- The user's index outlives its last session by nothing: an abandoned index
-- vanishes by itself. Relative to now, so Redis's clock does not matter.
local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[3], string.format('%d', tonumber(last[2]) - now))
return result
