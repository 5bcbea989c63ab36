-- End every session of one user except one, leaving tombstones that record
-- why, in one atomic step that costs O(that user's sessions).
--
-- KEYS[1] the user's index, KEYS[2] the global index
-- ARGV[1] now (ms)          ARGV[2] session prefix   ARGV[3] tombstone prefix
-- ARGV[4] end reason        ARGV[5] tombstone time to live (ms)
-- ARGV[6] key to keep ('' for none)
--
-- Returns how many sessions it ended.
local now = tonumber(ARGV[1])
local n = 0
for _, e in ipairs(prune_user(KEYS[1], KEYS[2], now, ARGV[2])) do
  if e[1] ~= ARGV[6] then
    end_session(e[1], KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
    n = n + 1
  end
end
return n
