package localsvc

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// PingRedis checks that the Redis server or Sentinel on addr answers and is
// process pid: after losing a race for a port, the answer could come from
// someone else's server.
func PingRedis(addr string, pid int) error {
	conn, err := redis.Dial("tcp", addr,
		redis.DialConnectTimeout(200*time.Millisecond),
		redis.DialReadTimeout(time.Second),
		redis.DialWriteTimeout(time.Second))
	if err != nil {
		return err
	}
	defer conn.Close()
	info, err := redis.String(conn.Do("INFO", "server"))
	if err != nil {
		return fmt.Errorf("%s: INFO server: %w", addr, err)
	}
	if !strings.Contains(info, "\r\nprocess_id:"+strconv.Itoa(pid)+"\r\n") {
		return fmt.Errorf("%s is answered by another process than pid %d", addr, pid)
	}
	return nil
}

// ReplicationInfo returns INFO replication of the server on addr as a map.
func ReplicationInfo(addr string) (map[string]string, error) {
	conn, err := dialQuick(addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	info, err := redis.String(conn.Do("INFO", "replication"))
	if err != nil {
		return nil, fmt.Errorf("%s: INFO replication: %w", addr, err)
	}
	m := make(map[string]string)
	for line := range strings.SplitSeq(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// Role returns the first field of ROLE on addr: master, slave or sentinel.
func Role(addr string) (string, error) {
	conn, err := dialQuick(addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	role, err := redis.Values(conn.Do("ROLE"))
	if err != nil {
		return "", fmt.Errorf("%s: ROLE: %w", addr, err)
	}
	if len(role) == 0 {
		return "", fmt.Errorf("%s: ROLE: empty reply", addr)
	}
	return redis.String(role[0], nil)
}

// AskPrimary asks the Sentinel on addr where the primary it monitors as
// name is, and returns its host:port.
func AskPrimary(addr, name string) (string, error) {
	conn, err := dialQuick(addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	hp, err := redis.Strings(conn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name))
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", addr, err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel %s: does not know %q", addr, name)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// AgreedPrimary asks every Sentinel at sentinelAddrs for the primary named
// name and returns its address if they all give the same one.
func AgreedPrimary(sentinelAddrs []string, name string) (string, error) {
	if len(sentinelAddrs) == 0 {
		return "", errors.New("no sentinel running")
	}
	var addr string
	for i, s := range sentinelAddrs {
		a, err := AskPrimary(s, name)
		if err != nil {
			return "", err
		}
		if i > 0 && a != addr {
			return "", fmt.Errorf("sentinels disagree on the primary: %s and %s", addr, a)
		}
		addr = a
	}
	return addr, nil
}

// CheckSentinel reports whether the Sentinel on addr sees the primary named
// name up, that many replicas with their links up, and that many other
// Sentinels: what a failover needs.
func CheckSentinel(addr, name string, replicas, otherSentinels int) error {
	conn, err := dialQuick(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	master, err := redis.StringMap(conn.Do("SENTINEL", "MASTER", name))
	if err != nil {
		return fmt.Errorf("sentinel %s: SENTINEL MASTER: %w", addr, err)
	}
	switch {
	case master["flags"] != "master":
		return fmt.Errorf("sentinel %s: primary flags %q", addr, master["flags"])
	case master["num-slaves"] != strconv.Itoa(replicas):
		return fmt.Errorf("sentinel %s: knows %s replicas", addr, master["num-slaves"])
	case master["num-other-sentinels"] != strconv.Itoa(otherSentinels):
		return fmt.Errorf("sentinel %s: knows %s other sentinels", addr, master["num-other-sentinels"])
	}
	replies, err := redis.Values(conn.Do("SENTINEL", "REPLICAS", name))
	if err != nil {
		return fmt.Errorf("sentinel %s: SENTINEL REPLICAS: %w", addr, err)
	}
	for _, r := range replies {
		info, err := redis.StringMap(r, nil)
		if err != nil {
			return fmt.Errorf("sentinel %s: replica: %w", addr, err)
		}
		if info["flags"] != "slave" || info["master-link-status"] != "ok" {
			return fmt.Errorf("sentinel %s: replica %s:%s flags %q link %q", addr,
				info["ip"], info["port"], info["flags"], info["master-link-status"])
		}
	}
	return nil
}

// dialQuick connects for one short check.
func dialQuick(addr string) (redis.Conn, error) {
	return redis.Dial("tcp", addr,
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second),
		redis.DialWriteTimeout(2*time.Second))
}
