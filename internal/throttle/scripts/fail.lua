-- Record one failure of a throttled key and return the wait now in force
-- (ms).
--
-- KEYS[1] the key's failures   KEYS[2] the key's wait
-- ARGV[1] now (ms)          ARGV[2] limit (failures before any wait)
-- ARGV[3] window (ms)       ARGV[4] base delay (ms)
-- ARGV[5] max delay (ms)
return record_failure(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
