-- recent.lua for a server that takes no writes: the same page, read without
-- pruning. Members past their expiry are left out by the score range rather
-- than removed, so ranks count from the most recently active live member, as
-- recent.lua's do once it has pruned; a member whose session has vanished is
-- skipped, so a page may come short.
--
-- KEYS[1] the global index
-- ARGV[1] now (ms), ARGV[2] session prefix, ARGV[3] first rank, ARGV[4] last
-- rank (inclusive)
--
-- Returns a flat array: key, data, key, data, ...
local members = redis.call('ZRANGE', KEYS[1], '+inf', '(' .. ARGV[1], 'BYSCORE', 'REV',
  'LIMIT', ARGV[3], ARGV[4] - ARGV[3] + 1)
return session_pairs(members, ARGV[2])
