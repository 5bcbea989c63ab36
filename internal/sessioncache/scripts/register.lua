#!lua
-- Redis Cluster: list the link as one that may trust its cache until
-- ARGV[2] ms from Redis's clock (the heartbeats follow, one per primary).
-- KEYS[1] the list of caching replicas; ARGV[1] the link's ID, ARGV[2] the
-- listing's length in ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
