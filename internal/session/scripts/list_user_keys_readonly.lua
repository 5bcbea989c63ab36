-- list_user_keys.lua for a server that takes no writes: the same keys, read
-- without pruning (see list_user_readonly.lua).
--
-- KEYS[1] the user's index, KEYS[2] the global index (unused)
-- ARGV[1] now (ms), ARGV[2] session prefix
--
-- Returns the keys.
local keys = {}
for _, e in ipairs(scan_user(KEYS[1], tonumber(ARGV[1]), ARGV[2])) do
  keys[#keys + 1] = e[1]
end
return keys
