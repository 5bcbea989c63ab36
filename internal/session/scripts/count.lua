-- Count live sessions: prune the global index by expiry, then count it.
--
-- KEYS[1] the global index
-- ARGV[1] now (ms)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
