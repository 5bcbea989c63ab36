-- Count the live sessions of several users at once, pruning each user's
-- index as list_user.lua does, so a page listing many users costs one round
-- trip rather than one per user.
--
-- KEYS[1] the global index, KEYS[2...] the users' indexes
-- ARGV[1] now (ms), ARGV[2] session prefix
--
-- Returns one count per user index, in KEYS order from KEYS[2].
local now = tonumber(ARGV[1])
local counts = {}
for i = 2, #KEYS do
  counts[#counts + 1] = #prune_user(KEYS[i], KEYS[1], now, ARGV[2])
end
return counts
