-- count.lua for a server that takes no writes: the members of the global
-- index not past their expiry, counted without pruning.
--
-- KEYS[1] the global index
-- ARGV[1] now (ms)
return redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
