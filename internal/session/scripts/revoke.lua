-- End some of one user's sessions, leaving tombstones that record why, in one
-- atomic step. Keys that are not live sessions in this user's index are
-- ignored, so nobody can end another user's session by naming its key.
--
-- KEYS[1] the user's index, KEYS[2] the global index
-- ARGV[1] now (ms)          ARGV[2] session prefix   ARGV[3] tombstone prefix
-- ARGV[4] end reason        ARGV[5] tombstone time to live (ms)
-- ARGV[6...] keys to revoke
--
-- Returns how many sessions it ended.
local now = tonumber(ARGV[1])
prune_user(KEYS[1], KEYS[2], now, ARGV[2])
local n = 0
for i = 6, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    end_session(ARGV[i], KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
    n = n + 1
  end
end
return n
