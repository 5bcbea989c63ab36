-- End every session of one user except one, leaving tombstones that record
-- why, and record the time of this revocation, in one atomic step that costs
-- O(that user's sessions). create.lua refuses sessions of the user whose
-- authentication predates the recorded time, so a sign-in already in flight
-- cannot finish after the revocation with a working session.
--
-- KEYS[1] the user's index, KEYS[2] the global index, KEYS[3] the user's
-- revocation time
-- ARGV[1] now (ms)          ARGV[2] session prefix   ARGV[3] tombstone prefix
-- ARGV[4] end reason        ARGV[5] tombstone time to live (ms): also how
--                           long the revocation time is kept
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
-- The latest time wins, so a replica whose clock is behind cannot move the
-- line back.
local at = tonumber(redis.call('GET', KEYS[3]) or 0)
if now > at then
  at = now
end
redis.call('SET', KEYS[3], string.format('%d', at), 'PX', ARGV[5])
return n
