-- List the keys of one user's live sessions, pruning the index as it goes:
-- list_user.lua without the session data, for finding one key.
--
-- KEYS[1] the user's index, KEYS[2] the global index
-- ARGV[1] now (ms), ARGV[2] session prefix
--
-- Returns the keys.
local keys = {}
for _, e in ipairs(prune_user(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2])) do
  keys[#keys + 1] = e[1]
end
return keys
