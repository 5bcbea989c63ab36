package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// productionDownAfter is deploy/redis/sentinel.conf's down-after-milliseconds:
// the lease's length depends on it, so these tests use it rather than the
// test cluster's shorter one.
const productionDownAfter = 1500 * time.Millisecond

// leasedCluster starts a Sentinel cluster with production's down-after, and
// a pool over it that has reached the primary and holds the lease.
func leasedCluster(t *testing.T) (*testsvc.SentinelCluster, *redisx.SentinelPool) {
	t.Helper()
	c := testsvc.StartSentinelCluster(t)
	for i := range c.SentinelAddrs {
		sentinelDo(t, c, i, "SENTINEL", "SET", c.MasterName, "down-after-milliseconds", productionDownAfter.Milliseconds())
	}
	sp := newSentinelPool(t, c)
	if err := redisx.Ping(context.Background(), sp.Pool()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sp.AwaitPrimaryLease(ctx); err != nil {
		t.Fatal(err)
	}
	return c, sp
}

// sentinelDo runs a command on Sentinel i.
func sentinelDo(t *testing.T, c *testsvc.SentinelCluster, i int, cmd string, args ...any) any {
	t.Helper()
	conn, err := redis.Dial("tcp", c.SentinelAddrs[i], redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(time.Second), redis.DialWriteTimeout(time.Second))
	if err != nil {
		t.Fatalf("sentinel %d: %v", i, err)
	}
	defer conn.Close()
	reply, err := conn.Do(cmd, args...)
	if err != nil {
		t.Fatalf("sentinel %d: %s %v: %v", i, cmd, args, err)
	}
	return reply
}

// waitLease polls until sp's lease is held (or not, for held false).
func waitLease(t *testing.T, sp *redisx.SentinelPool, held bool, within time.Duration) time.Time {
	t.Helper()
	testkit.Eventually(t, within, fmt.Sprintf("primary lease held = %t", held), func() error {
		if sp.PrimaryTrusted() != held {
			return errors.New("not yet")
		}
		return nil
	})
	return time.Now()
}

// neverHeld fails t if sp's lease is held at any moment during d.
func neverHeld(t *testing.T, sp *redisx.SentinelPool, d time.Duration, while string) {
	t.Helper()
	for stop := time.Now().Add(d); time.Now().Before(stop); time.Sleep(time.Millisecond) {
		if sp.PrimaryTrusted() {
			t.Fatalf("primary lease held again %s", while)
		}
	}
}

// In normal operation the lease never lapses, even with the machine busy:
// Sentinels hear the primary about once a second and a lease runs for
// 0.9 × (1.5 s − up to a second) from each answer, renewed every 100 ms.
func TestPrimaryLeaseNeverLapsesInNormalOperation(t *testing.T) {
	_, sp := leasedCluster(t)
	stop := make(chan struct{})
	defer close(stop)
	for range runtime.GOMAXPROCS(0) {
		go func() { // load: every core busy besides the Sentinels and Redis
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	least := time.Hour
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		left := time.Until(sp.PrimaryLease())
		if left <= 0 {
			t.Fatalf("primary lease lapsed in normal operation (%s past its end)", -left)
		}
		least = min(least, left)
	}
	t.Logf("least primary lease left over 8 s with every core busy: %s", least.Round(time.Millisecond))
}

// A replica of Hallpass cut off from every Sentinel, with the primary
// still answering it, stops trusting the primary within down-after of the
// cut: before any Sentinel on the other side could even flag the primary
// down, let alone fail it over. It trusts it again once the Sentinels
// answer.
func TestPrimaryLeaseEndsWithinDownAfterOfLosingTheSentinels(t *testing.T) {
	c, sp := leasedCluster(t)
	var thaw []func()
	cut := time.Now()
	end := sp.PrimaryLease()
	for i := range c.SentinelAddrs {
		thaw = append(thaw, c.FreezeSentinel(t, i))
	}
	if left := end.Sub(cut); left > productionDownAfter*9/10 {
		t.Fatalf("lease ran %s past the cut, more than 0.9 × down-after", left)
	}
	lapsed := waitLease(t, sp, false, 2*productionDownAfter)
	if took := lapsed.Sub(cut); took >= productionDownAfter {
		t.Fatalf("lease held %s after the cut, want under down-after %s", took, productionDownAfter)
	}
	t.Logf("lease ended %s after the Sentinels were cut off", lapsed.Sub(cut).Round(time.Millisecond))
	// The primary still answers, and nothing from it renews the lease.
	if err := redisx.Ping(context.Background(), sp.Pool()); err != nil {
		t.Fatalf("the primary stopped answering: %v", err)
	}
	neverHeld(t, sp, 2*time.Second, "with every Sentinel cut off")

	for _, f := range thaw {
		f()
	}
	waitLease(t, sp, true, 10*time.Second)
}

// The lease needs every Sentinel until their records reach leaseHistory
// back (the internal tests cover that part): one Sentinel that cannot
// vouch for the primary ends it within down-after, and one that names
// another primary ends it at once. Neither answer ever renews it.
func TestPrimaryLeaseIsNeverRenewedByASentinelThatCannotVouchForThePrimary(t *testing.T) {
	for _, tc := range []struct {
		name   string
		within time.Duration
		// spoil makes Sentinel 0 unable to vouch for the primary, and
		// returns what undoes it.
		spoil func(t *testing.T, c *testsvc.SentinelCluster) (restore func())
	}{
		{"frozen", productionDownAfter, func(t *testing.T, c *testsvc.SentinelCluster) func() {
			return c.FreezeSentinel(t, 0)
		}},
		{"down-after shorter than its last PONG", productionDownAfter, func(t *testing.T, c *testsvc.SentinelCluster) func() {
			// Every answer then says the primary's last valid reply is
			// older than down-after: it proves nothing.
			sentinelDo(t, c, 0, "SENTINEL", "SET", c.MasterName, "down-after-milliseconds", 1)
			return func() {
				sentinelDo(t, c, 0, "SENTINEL", "SET", c.MasterName, "down-after-milliseconds", productionDownAfter.Milliseconds())
			}
		}},
		{"another primary", 500 * time.Millisecond, func(t *testing.T, c *testsvc.SentinelCluster) func() {
			primary := c.Primary(t)
			monitor := func(addr string) {
				host, port, _ := strings.Cut(addr, ":")
				sentinelDo(t, c, 0, "SENTINEL", "REMOVE", c.MasterName)
				sentinelDo(t, c, 0, "SENTINEL", "MONITOR", c.MasterName, host, port, 2)
				sentinelDo(t, c, 0, "SENTINEL", "SET", c.MasterName, "down-after-milliseconds", productionDownAfter.Milliseconds())
			}
			monitor(c.Replica(t).Addr)
			return func() { monitor(primary.Addr) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, sp := leasedCluster(t)
			spoiled := time.Now()
			restore := tc.spoil(t, c)
			lapsed := waitLease(t, sp, false, 2*tc.within)
			if took := lapsed.Sub(spoiled); took >= tc.within {
				t.Fatalf("lease held %s after Sentinel 0 stopped vouching, want under %s", took, tc.within)
			}
			neverHeld(t, sp, 2*time.Second, "while Sentinel 0 cannot vouch for the primary")
			restore()
			waitLease(t, sp, true, 10*time.Second)
		})
	}
}
