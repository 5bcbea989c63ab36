-- Single Redis: return the links that may be trusting their caches and
-- publish the fence, in one step.
-- KEYS[1] the list of caching replicas; ARGV[1] the fence channel, ARGV[2]
-- the fence.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
redis.call('PUBLISH', ARGV[1], ARGV[2])
return members
