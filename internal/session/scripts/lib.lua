-- Helpers shared by the registry scripts: redis.go puts this file in front of
-- create.lua, revoke.lua, revoke_user.lua, list_user_keys.lua and
-- count_users.lua, and of the read-only listings (*_readonly.lua), which a
-- replica runs while the primary cannot be reached.
--
-- The indexes hold bare session keys; a session lives under the session
-- prefix plus its key, its tombstone under the tombstone prefix plus its key
-- (both prefixes come in ARGV). The scripts reach those keys through index
-- members rather than through KEYS. Redis Cluster runs such a script only
-- if every key it touches lies in the slot of its declared keys: a member
-- starts with its user's shard tag ("{3f}..."), which is the hash tag of
-- the user's index and of the shard's global index too, so it does.
--
-- Times are milliseconds on the application's clock, passed in ARGV, so
-- Redis's own clock never decides whether a session is live.

-- scan_user returns the live members of a user's index with their scores,
-- { {key, absolute expiry}, ... }, and the members not past their absolute
-- expiry whose session is gone (expired, deleted). It writes nothing.
local function scan_user(user, now, session_prefix)
  local live, gone = {}, {}
  local members = redis.call('ZRANGE', user, 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    local m, expires = members[i], tonumber(members[i + 1])
    if expires > now then
      if redis.call('EXISTS', session_prefix .. m) == 1 then
        live[#live + 1] = { m, expires }
      else
        gone[#gone + 1] = m
      end
    end
  end
  return live, gone
end

-- prune_user drops from a user's index every member past its absolute expiry
-- (its score) or whose session is gone (expired, deleted), and returns the
-- live members with their scores: { {key, absolute expiry}, ... }.
local function prune_user(user, all, now, session_prefix)
  redis.call('ZREMRANGEBYSCORE', user, '-inf', now)
  local live, gone = scan_user(user, now, session_prefix)
  for _, m in ipairs(gone) do
    redis.call('ZREM', user, m)
    redis.call('ZREM', all, m)
  end
  return live
end

-- session_pairs returns key, data, key, data, ... for those of members whose
-- session exists, skipping the others: the reply of the read-only listings.
local function session_pairs(members, session_prefix)
  local out = {}
  for _, m in ipairs(members) do
    local data = redis.call('GET', session_prefix .. m)
    if data then
      out[#out + 1] = m
      out[#out + 1] = data
    end
  end
  return out
end

-- end_session deletes the session under key m, leaves a tombstone recording
-- reason for ttl milliseconds, and removes m from both indexes.
local function end_session(m, user, all, session_prefix, tombstone_prefix, reason, ttl)
  redis.call('DEL', session_prefix .. m)
  redis.call('SET', tombstone_prefix .. m, reason, 'PX', ttl)
  redis.call('ZREM', user, m)
  redis.call('ZREM', all, m)
end

