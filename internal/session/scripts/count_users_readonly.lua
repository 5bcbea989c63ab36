-- count_users.lua for a server that takes no writes: the same counts, read
-- without pruning (see list_user_readonly.lua).
--
-- KEYS[1] the global index (unused), KEYS[2...] the users' indexes
-- ARGV[1] now (ms), ARGV[2] session prefix
--
-- Returns one count per user index, in KEYS order from KEYS[2].
local now = tonumber(ARGV[1])
local counts = {}
for i = 2, #KEYS do
  counts[#counts + 1] = #scan_user(KEYS[i], now, ARGV[2])
end
return counts
