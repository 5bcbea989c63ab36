-- Helpers shared by the registry scripts: redis.go puts this file in front of
-- create.lua, revoke.lua, revoke_user.lua, list_user_keys.lua and
-- count_users.lua.
--
-- The indexes hold bare session keys; a session lives under the session
-- prefix plus its key, its tombstone under the tombstone prefix plus its key
-- (both prefixes come in ARGV). The scripts reach those keys through index
-- members rather than through KEYS. That is fine on a single Redis primary
-- (with Sentinel), where every key is on the one node, but not on Redis
-- Cluster, which needs every key a script touches declared in KEYS and in one
-- hash slot.
--
-- Times are milliseconds on the application's clock, passed in ARGV, so
-- Redis's own clock never decides whether a session is live.

-- prune_user drops from a user's index every member past its absolute expiry
-- (its score) or whose session is gone (expired, deleted), and returns the
-- live members with their scores: { {key, absolute expiry}, ... }.
local function prune_user(user, all, now, session_prefix)
  redis.call('ZREMRANGEBYSCORE', user, '-inf', now)
  local live = {}
  local members = redis.call('ZRANGE', user, 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    local m = members[i]
    if redis.call('EXISTS', session_prefix .. m) == 1 then
      live[#live + 1] = { m, tonumber(members[i + 1]) }
    else
      redis.call('ZREM', user, m)
      redis.call('ZREM', all, m)
    end
  end
  return live
end

-- end_session deletes the session under key m, leaves a tombstone recording
-- reason for ttl milliseconds, and removes m from both indexes.
local function end_session(m, user, all, session_prefix, tombstone_prefix, reason, ttl)
  redis.call('DEL', session_prefix .. m)
  redis.call('SET', tombstone_prefix .. m, reason, 'PX', ttl)
  redis.call('ZREM', user, m)
  redis.call('ZREM', all, m)
end

