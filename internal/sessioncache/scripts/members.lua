#!lua flags=no-writes
-- Redis Cluster: the links that may be trusting their caches now, by
-- Redis's clock. KEYS[1] the list of caching replicas.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
