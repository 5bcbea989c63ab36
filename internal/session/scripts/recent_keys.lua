-- The first ranks of one shard's global index, most recently active first,
-- after pruning it by expiry: RedisStore.Recent merges every shard's and
-- reads the sessions of the page it keeps.
--
-- KEYS[1] the shard's global index
-- ARGV[1] now (ms), ARGV[2] how many to return
--
-- Returns a flat array: key, score, key, score, ...
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
