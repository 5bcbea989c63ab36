package testsvc_test

import (
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/testsvc"
)

func TestSentinelClusterFailsOverWhenThePrimaryDies(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	if len(c.SentinelAddrs) != 3 {
		t.Fatalf("SentinelAddrs = %v, want 3", c.SentinelAddrs)
	}

	primary, replica := c.Primary(t), c.Replica(t)
	if primary.Addr == replica.Addr {
		t.Fatalf("primary and replica are both %s", primary.Addr)
	}
	pc := primary.Conn(t)
	for option, want := range map[string]string{
		"min-replicas-to-write": "1",
		"min-replicas-max-lag":  "10",
		"appendonly":            "yes",
	} {
		got, err := redis.StringMap(pc.Do("CONFIG", "GET", option))
		if err != nil || got[option] != want {
			t.Errorf("primary CONFIG GET %s = %v, %v; want %s", option, got, err, want)
		}
	}
	if _, err := pc.Do("SET", "k", "v"); err != nil {
		t.Fatalf("SET on the primary: %v", err)
	}
	if role := roleOf(t, replica.Conn(t)); role != "slave" {
		t.Fatalf("replica ROLE = %q, want slave", role)
	}

	start := time.Now()
	old := c.KillPrimary(t)
	if old != primary.Addr {
		t.Fatalf("KillPrimary killed %s, want %s", old, primary.Addr)
	}
	promoted := c.WaitForFailover(t, old)
	t.Logf("failover after SIGKILL took %s", time.Since(start).Round(time.Millisecond))
	if promoted != replica.Addr {
		t.Fatalf("WaitForFailover = %s, want the replica %s", promoted, replica.Addr)
	}
	if got := c.Primary(t); got != replica {
		t.Fatalf("Primary = %s after failover, want %s", got.Addr, replica.Addr)
	}
	if role := roleOf(t, replica.Conn(t)); role != "master" {
		t.Fatalf("promoted replica ROLE = %q, want master", role)
	}
}

func TestSentinelsCanBeStoppedAndStarted(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	c.StopSentinel(t, 0)
	if conn, err := redis.Dial("tcp", c.SentinelAddrs[0], redis.DialConnectTimeout(time.Second)); err == nil {
		conn.Close()
		t.Fatalf("dial stopped sentinel %s succeeded", c.SentinelAddrs[0])
	}
	if got := c.PrimaryAddr(t); got != c.Primary(t).Addr {
		t.Fatalf("PrimaryAddr with one sentinel down = %s", got)
	}
	c.StartSentinel(t, 0)
	conn, err := redis.Dial("tcp", c.SentinelAddrs[0], redis.DialConnectTimeout(time.Second))
	if err != nil {
		t.Fatalf("dial restarted sentinel: %v", err)
	}
	defer conn.Close()
	addr, err := redis.Strings(conn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", c.MasterName))
	if err != nil || len(addr) != 2 {
		t.Fatalf("restarted sentinel GET-MASTER-ADDR-BY-NAME = %v, %v", addr, err)
	}
}

func roleOf(t *testing.T, c redis.Conn) string {
	t.Helper()
	role, err := redis.Values(c.Do("ROLE"))
	if err != nil || len(role) == 0 {
		t.Fatalf("ROLE: %v, %v", role, err)
	}
	s, _ := redis.String(role[0], nil)
	return s
}
