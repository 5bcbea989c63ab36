package testsvc_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/testsvc"
)

func TestRedisClusterReshardsAndFailsOver(t *testing.T) {
	start := time.Now()
	c := testsvc.StartRedisCluster(t, 3, 1)
	t.Logf("cluster of 6 ready in %s", time.Since(start).Round(time.Millisecond))
	if got := len(c.Seeds()); got != 6 {
		t.Fatalf("Seeds = %d addresses, want 6", got)
	}
	primaries := c.Primaries(t)
	if len(primaries) != 3 {
		t.Fatalf("Primaries = %v, want 3", primaries)
	}
	for _, addr := range primaries {
		if role := roleOf(t, c.Conn(t, addr)); role != "master" {
			t.Errorf("primary %s ROLE = %q", addr, role)
		}
	}

	before := slotsOwned(t, c, primaries[1])
	c.Reshard(t, primaries[0], primaries[1], 100)
	if got := slotsOwned(t, c, primaries[1]); got != before+100 {
		t.Fatalf("after moving 100 slots to %s it owns %d, had %d", primaries[1], got, before)
	}

	start = time.Now()
	dead := c.KillPrimaryOf(t, "probe")
	promoted := c.WaitForPromotion(t, dead)
	t.Logf("promotion after SIGKILL took %s", time.Since(start).Round(time.Millisecond))
	now := c.Primaries(t)
	if slices.Contains(now, dead) || !slices.Contains(now, promoted) || len(now) != 3 {
		t.Fatalf("Primaries after %s died = %v, want %s among 3", dead, now, promoted)
	}
	if role := roleOf(t, c.Conn(t, promoted)); role != "master" {
		t.Fatalf("promoted %s ROLE = %q", promoted, role)
	}
}

// slotsOwned counts the slots of the node at addr in its own CLUSTER NODES.
func slotsOwned(t *testing.T, c *testsvc.RedisCluster, addr string) int {
	t.Helper()
	text, err := redis.String(c.Conn(t, addr).Do("CLUSTER", "NODES"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "myself") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, _ := strconv.Atoi(lo)
			b, _ := strconv.Atoi(hi)
			n += b - a + 1
		}
	}
	return n
}
