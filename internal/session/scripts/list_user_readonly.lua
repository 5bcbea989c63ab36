-- list_user.lua for a server that takes no writes (a replica while the
-- primary cannot be reached): the same reply, read without pruning. Members
-- past their absolute expiry and members whose session is gone are skipped
-- and left in the index for the primary to prune.
--
-- KEYS[1] the user's index, KEYS[2] the global index (unused)
-- ARGV[1] now (ms), ARGV[2] session prefix
--
-- Returns a flat array: key, data, key, data, ...
return session_pairs(redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE'), ARGV[2])
