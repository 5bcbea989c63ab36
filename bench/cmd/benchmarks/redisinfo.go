package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// monitoring are commands that the driver, Sentinel and replication send on
// their own schedule; they are not part of serving requests. PUBLISH is not
// among them: the session cache's heartbeats and fences publish. In the
// cluster, INFO commandstats therefore also counts Sentinel's hello messages
// (each Sentinel's one every 2 s), which overstates the replicas' share a
// little; MONITOR tells them apart by channel.
var monitoring = map[string]bool{"info": true, "ping": true, "replconf": true, "subscribe": true, "psubscribe": true, "config": true, "command": true, "sentinel": true, "monitor": true}

// setup are commands a client sends when it opens a connection (redigo's
// AUTH/SELECT, Hallpass's Sentinel pool's CLIENT SETNAME and ROLE check):
// per request only when a pool keeps dialling.
var setup = map[string]bool{"client": true, "hello": true, "auth": true, "select": true, "role": true}

// redisCounters are the server-wide counters read around a run.
type redisCounters struct {
	calls       map[string]int64 // by command, "client|setname" as Redis 7 names subcommands
	connections int64            // total_connections_received
}

// readRedisCounters reads INFO commandstats and the connection count.
func readRedisCounters(addr string) (redisCounters, error) {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		return redisCounters{}, err
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "commandstats"))
	if err != nil {
		return redisCounters{}, err
	}
	stats, err := redis.String(c.Do("INFO", "stats"))
	if err != nil {
		return redisCounters{}, err
	}
	rc := redisCounters{calls: parseCommandStats(info)}
	for _, line := range strings.Split(stats, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_connections_received:"); ok {
			rc.connections, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return rc, nil
}

// parseCommandStats reads "cmdstat_get:calls=12,usec=34,…" lines.
func parseCommandStats(info string) map[string]int64 {
	calls := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err == nil {
					calls[strings.TrimPrefix(name, "cmdstat_")] = n
				}
			}
		}
	}
	return calls
}

// family is a command's name without its subcommand: "client|setname" →
// "client".
func family(name string) string {
	f, _, _ := strings.Cut(strings.ToLower(name), "|")
	return f
}

// commandDeltas splits after − before into the commands requests sent and
// connection set-up, leaving monitoring out.
func commandDeltas(before, after map[string]int64) (requests, conns map[string]int64) {
	requests, conns = map[string]int64{}, map[string]int64{}
	for name, n := range after {
		delta := n - before[name]
		switch f := family(name); {
		case delta <= 0 || monitoring[f]:
		case setup[f]:
			conns[name] = delta
		default:
			requests[name] = delta
		}
	}
	return requests, conns
}

// redisVersion returns the server's version.
func redisVersion(addr string) string {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		return "unknown"
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "server"))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			return v
		}
	}
	return "unknown"
}

// redisPID returns the server's process ID, for its CPU time.
func redisPID(addr string) (int, error) {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "server"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no process_id in INFO server of %s", addr)
}
