#!lua
-- Redis Cluster: publish a heartbeat on the primary the script runs on.
-- As a script that may write, Redis refuses it whole when the primary
-- cannot write, as it does the single Redis's heartbeat.
-- ARGV[1] the heartbeat channel, ARGV[2] its payload.
return redis.call('PUBLISH', ARGV[1], ARGV[2])
