-- recent_keys.lua for a server that takes no writes: the same ranks, with
-- members past their expiry left out by the score range, not removed.
--
-- KEYS[1] the shard's global index
-- ARGV[1] now (ms), ARGV[2] how many to return
--
-- Returns a flat array: key, score, key, score, ...
return redis.call('ZRANGE', KEYS[1], '+inf', '(' .. ARGV[1], 'BYSCORE', 'REV',
  'LIMIT', 0, ARGV[2], 'WITHSCORES')
