package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// testClientName names the pool's connections so tests can find them in
// CLIENT LIST.
const testClientName = "hallpass-test"

// testConnectTimeout is short so that failures show quickly, but not so
// short that a busy machine trips it.
const testConnectTimeout = 300 * time.Millisecond

func newSentinelPool(t *testing.T, c *testsvc.SentinelCluster) *redisx.SentinelPool {
	t.Helper()
	sp, err := redisx.NewSentinelPool(redisx.SentinelOptions{
		Addrs:      c.SentinelAddrs,
		MasterName: c.MasterName,
		ClientName: testClientName,
		PoolOptions: redisx.PoolOptions{
			MaxActive:      16,
			MaxIdle:        8,
			ConnectTimeout: testConnectTimeout,
			ReadTimeout:    time.Second,
			WriteTimeout:   time.Second,
		},
	})
	if err != nil {
		t.Fatalf("NewSentinelPool: %v", err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// write sets key on a connection from pool and returns the address of the
// server that took the write.
func write(pool *redis.Pool, key, value string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := pool.GetContext(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := redis.DoContext(c, ctx, "SET", key, value); err != nil {
		return "", err
	}
	return servedBy(ctx, c)
}

// writeWithOneRetry is what a careful caller does: one more try on a fresh
// connection after a failure.
func writeWithOneRetry(pool *redis.Pool, key, value string) (string, error) {
	addr, err := write(pool, key, value)
	if err != nil {
		addr, err = write(pool, key, value)
	}
	return addr, err
}

// servedBy returns the address of the server c is connected to.
func servedBy(ctx context.Context, c redis.Conn) (string, error) {
	port, err := redis.StringMap(redis.DoContext(c, ctx, "CONFIG", "GET", "port"))
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + port["port"], nil
}

// warm leaves n idle connections in pool.
func warm(t *testing.T, pool *redis.Pool, n int) {
	t.Helper()
	var held []redis.Conn
	for range n {
		c, err := pool.GetContext(context.Background())
		if err != nil {
			t.Fatalf("warm pool: %v", err)
		}
		if _, err := c.Do("PING"); err != nil {
			t.Fatalf("warm pool: %v", err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		c.Close()
	}
	if idle := pool.Stats().IdleCount; idle != n {
		t.Fatalf("warm pool: %d idle connections, want %d", idle, n)
	}
}

// namedClients returns the CLIENT LIST lines of the server or Sentinel at
// addr for connections named testClientName.
func namedClients(addr string, password string) ([]string, error) {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(time.Second), redis.DialWriteTimeout(time.Second),
		redis.DialPassword(password))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	list, err := redis.String(c.Do("CLIENT", "LIST"))
	if err != nil {
		return nil, err
	}
	var named []string
	for line := range strings.SplitSeq(list, "\n") {
		if strings.Contains(line, " name="+testClientName+" ") {
			named = append(named, line)
		}
	}
	return named, nil
}

// watching reports whether one of the Sentinels holds the pool's
// +switch-master subscription.
func watching(c *testsvc.SentinelCluster) error { return watchingWith(c, "") }

// watchingWith is watching for Sentinels that require password.
func watchingWith(c *testsvc.SentinelCluster, password string) error {
	for _, addr := range c.SentinelAddrs {
		lines, err := namedClients(addr, password)
		if err != nil {
			continue
		}
		for _, l := range lines {
			if strings.Contains(l, " sub=1 ") {
				return nil
			}
		}
	}
	return errors.New("no sentinel has the pool's subscription")
}

func TestSentinelPoolWritesToThePrimary(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	sp := newSentinelPool(t, c)
	primary := c.PrimaryAddr(t)

	served, err := write(sp.Pool(), "k", "v")
	if err != nil {
		t.Fatalf("SET: %v", err)
	}
	if served != primary {
		t.Fatalf("write went to %s, want the primary %s", served, primary)
	}
	if got := sp.MasterAddr(); got != primary {
		t.Errorf("MasterAddr = %q, want %q", got, primary)
	}
	v, err := redis.String(c.Primary(t).Conn(t).Do("GET", "k"))
	if err != nil || v != "v" {
		t.Fatalf("GET on the primary = %q, %v; want v", v, err)
	}
	if err := redisx.Ping(context.Background(), sp.Pool()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestSentinelPoolRecoversWhenThePrimaryIsKilled(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	sp := newSentinelPool(t, c)
	pool := sp.Pool()
	warm(t, pool, 4)

	old := c.KillPrimary(t)
	killed := time.Now()
	var (
		served   string
		failures int
	)
	testkit.Eventually(t, 30*time.Second, "a write after the primary was killed", func() error {
		var err error
		served, err = write(pool, "after-kill", "1")
		if err != nil {
			failures++
		}
		return err
	})
	t.Logf("first write %s after SIGKILL, %d failed attempts before it",
		time.Since(killed).Round(time.Millisecond), failures)

	promoted := c.WaitForFailover(t, old)
	if served != promoted {
		t.Fatalf("write went to %s, want the promoted replica %s", served, promoted)
	}
	nc := c.Primary(t).Conn(t)
	if role := roleOf(t, nc); role != "master" {
		t.Fatalf("ROLE of %s = %q, want master", promoted, role)
	}
	if v, err := redis.String(nc.Do("GET", "after-kill")); err != nil || v != "1" {
		t.Fatalf("GET on the new primary = %q, %v", v, err)
	}
	if got := sp.MasterAddr(); got != promoted {
		t.Errorf("MasterAddr = %q, want %q", got, promoted)
	}
}

func TestSentinelPoolLeavesADemotedPrimary(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	sp := newSentinelPool(t, c)
	pool := sp.Pool()
	old := c.PrimaryAddr(t)
	warm(t, pool, 4)
	testkit.Eventually(t, 10*time.Second, "pool subscribed", func() error { return watching(c) })

	// A steady writer through the failover, as the site would be: each write
	// may be retried once.
	type result struct {
		at     time.Time
		served string
		err    error
	}
	var (
		results []result
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			served, err := writeWithOneRetry(pool, "during", strconv.Itoa(i))
			results = append(results, result{time.Now(), served, err})
			time.Sleep(5 * time.Millisecond) // pacing, not synchronisation
		}
	}()

	sc, err := redis.Dial("tcp", c.SentinelAddrs[0], redis.DialConnectTimeout(time.Second))
	if err != nil {
		t.Fatalf("dial sentinel: %v", err)
	}
	defer sc.Close()
	start := time.Now()
	if _, err := sc.Do("SENTINEL", "FAILOVER", c.MasterName); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	promoted := c.WaitForFailover(t, old)
	announced := time.Now()
	t.Logf("manual failover announced by all sentinels %s after SENTINEL FAILOVER",
		announced.Sub(start).Round(time.Millisecond))

	// After the announcement, a write with one retry always succeeds, and on
	// the new primary.
	for i := range 20 {
		served, err := writeWithOneRetry(pool, "after", strconv.Itoa(i))
		if err != nil {
			t.Fatalf("write %d after the switch was announced: %v", i, err)
		}
		if served != promoted {
			t.Fatalf("write %d after the switch went to %s, want %s", i, served, promoted)
		}
	}
	close(stop)
	wg.Wait()

	var failed int
	var firstFailure, lastFailure, firstOnNew time.Time
	for _, r := range results {
		switch {
		case r.err != nil:
			failed++
			if firstFailure.IsZero() {
				firstFailure = r.at
				t.Logf("first failure: %v", r.err)
			}
			lastFailure = r.at
			if r.at.After(announced) {
				t.Errorf("write at +%s failed twice after the switch was announced: %v", r.at.Sub(start), r.err)
			}
		case r.served == promoted && firstOnNew.IsZero():
			firstOnNew = r.at
		case r.served == old && r.at.After(announced):
			t.Errorf("write at +%s went to the demoted primary %s", r.at.Sub(start), old)
		}
	}
	t.Logf("steady writer: %d writes, %d failed even after a retry (from +%s to +%s), first on the new primary at +%s",
		len(results), failed, since(start, firstFailure), since(start, lastFailure), since(start, firstOnNew))

	if got := sp.MasterAddr(); got != promoted {
		t.Errorf("MasterAddr = %q, want %q", got, promoted)
	}
	// Sentinel turns the old primary into a replica only some seconds later
	// (it waits for fresh INFO from it); meanwhile it still says it is a
	// master, and refuses writes only for want of a replica. The pool must
	// have left it already, idle connections included.
	t.Logf("old primary's role at +%s: %q", since(start, time.Now()), roleAt(old))
	testkit.Eventually(t, 5*time.Second, "pool connections to the demoted primary closed", func() error {
		lines, err := namedClients(old, "")
		if err != nil {
			return err
		}
		if len(lines) > 0 {
			return fmt.Errorf("%d still open: %s", len(lines), strings.Join(lines, "\n"))
		}
		return nil
	})
}

func TestSentinelPoolClosesIdleConnectionsToADemotedPrimary(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	sp := newSentinelPool(t, c)
	old := c.PrimaryAddr(t)
	warm(t, sp.Pool(), 4)
	testkit.Eventually(t, 10*time.Second, "pool subscribed", func() error { return watching(c) })
	if lines, err := namedClients(old, ""); err != nil || len(lines) != 4 {
		t.Fatalf("pool connections on the primary = %d, %v; want 4", len(lines), err)
	}

	// Nothing borrows from the pool: only the +switch-master announcement
	// can tell it to let go of its idle connections.
	sc, err := redis.Dial("tcp", c.SentinelAddrs[1], redis.DialConnectTimeout(time.Second))
	if err != nil {
		t.Fatalf("dial sentinel: %v", err)
	}
	defer sc.Close()
	if _, err := sc.Do("SENTINEL", "FAILOVER", c.MasterName); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	promoted := c.WaitForFailover(t, old)
	testkit.Eventually(t, 3*time.Second, "idle connections to the demoted primary closed", func() error {
		lines, err := namedClients(old, "")
		if err != nil {
			return err
		}
		if len(lines) > 0 {
			return fmt.Errorf("%d still open", len(lines))
		}
		return nil
	})
	if served, err := write(sp.Pool(), "k", "v"); err != nil || served != promoted {
		t.Fatalf("write after the switch went to %q, %v; want %s", served, err, promoted)
	}
}

func TestSentinelPoolWithoutSentinels(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	sp := newSentinelPool(t, c)
	pool := sp.Pool()
	warm(t, pool, 1)

	// One Sentinel down: new connections come through the others.
	c.StopSentinel(t, 0)
	var held []redis.Conn
	for range 3 {
		conn, err := pool.GetContext(context.Background())
		if err != nil {
			t.Fatalf("get connection with sentinel 0 down: %v", err)
		}
		held = append(held, conn)
	}
	for _, conn := range held {
		conn.Close()
	}

	// All down: pooled connections still work, since the primary is
	// fine, but a new one fails within about the connect timeout.
	c.StopSentinel(t, 1)
	c.StopSentinel(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held = held[:0]
	for range 3 {
		conn, err := pool.GetContext(ctx)
		if err != nil {
			t.Fatalf("get idle connection with all sentinels down: %v", err)
		}
		if _, err := conn.Do("SET", "k", "v"); err != nil {
			t.Fatalf("SET on an idle connection with all sentinels down: %v", err)
		}
		held = append(held, conn)
	}
	start := time.Now()
	_, err := pool.GetContext(ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatal("new connection with all sentinels down succeeded")
	}
	t.Logf("dial with all sentinels down failed after %s: %v", took.Round(time.Millisecond), err)
	if took > 2*testConnectTimeout {
		t.Errorf("dial with all sentinels down took %s, want about the connect timeout %s or less", took, testConnectTimeout)
	}
	for _, conn := range held {
		conn.Close()
	}

	for i := range c.SentinelAddrs {
		c.StartSentinel(t, i)
	}
	testkit.Eventually(t, 10*time.Second, "a new connection once the sentinels are back", func() error {
		var held []redis.Conn
		defer func() {
			for _, conn := range held {
				conn.Close()
			}
		}()
		for range 4 { // more than are idle: at least one is dialled
			conn, err := pool.GetContext(ctx)
			if err != nil {
				return err
			}
			held = append(held, conn)
		}
		return nil
	})
	testkit.Eventually(t, 15*time.Second, "pool subscribed again", func() error { return watching(c) })
}

func TestSentinelPoolAuthenticatesToTheServers(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	const password = "s3cret-for-tests"
	servers := []*testsvc.RedisServer{c.Primary(t), c.Replica(t)}
	for _, srv := range servers {
		if _, err := srv.Conn(t).Do("CONFIG", "SET", "masterauth", password); err != nil {
			t.Fatalf("CONFIG SET masterauth: %v", err)
		}
	}
	for _, addr := range c.SentinelAddrs {
		sc, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second))
		if err != nil {
			t.Fatalf("dial sentinel: %v", err)
		}
		_, err = sc.Do("SENTINEL", "SET", c.MasterName, "auth-pass", password)
		sc.Close()
		if err != nil {
			t.Fatalf("SENTINEL SET auth-pass: %v", err)
		}
	}
	for _, srv := range servers {
		if _, err := srv.Conn(t).Do("CONFIG", "SET", "requirepass", password); err != nil {
			t.Fatalf("CONFIG SET requirepass: %v", err)
		}
	}

	sp := newSentinelPool(t, c) // no password
	if _, err := write(sp.Pool(), "k", "v"); err == nil {
		t.Fatal("write without the password succeeded")
	} else if strings.Contains(err.Error(), password) {
		t.Fatalf("error repeats the password: %v", err)
	}

	withPassword, err := redisx.NewSentinelPool(redisx.SentinelOptions{
		Addrs:      c.SentinelAddrs,
		MasterName: c.MasterName,
		Password:   password,
	})
	if err != nil {
		t.Fatalf("NewSentinelPool: %v", err)
	}
	defer withPassword.Close()
	if served, err := write(withPassword.Pool(), "k", "v"); err != nil || served != c.PrimaryAddr(t) {
		t.Fatalf("write with the password went to %q, %v; want %s", served, err, c.PrimaryAddr(t))
	}
}

func TestSentinelPoolAuthenticatesToTheSentinels(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	const password = "sentinel-s3cret"
	primary := c.PrimaryAddr(t) // the cluster's own helpers have no password
	for _, addr := range c.SentinelAddrs {
		sc, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second))
		if err != nil {
			t.Fatalf("dial sentinel: %v", err)
		}
		// Sentinels then use the password with each other too.
		_, err = sc.Do("SENTINEL", "CONFIG", "SET", "sentinel-pass", password)
		if err == nil {
			_, err = sc.Do("ACL", "SETUSER", "default", "resetpass", ">"+password)
		}
		sc.Close()
		if err != nil {
			t.Fatalf("set sentinel password: %v", err)
		}
	}

	sp := newSentinelPool(t, c) // no password
	if _, err := write(sp.Pool(), "k", "v"); err == nil {
		t.Fatal("write without the sentinel password succeeded")
	}

	withPassword, err := redisx.NewSentinelPool(redisx.SentinelOptions{
		Addrs:            c.SentinelAddrs,
		MasterName:       c.MasterName,
		SentinelPassword: password,
		ClientName:       testClientName,
	})
	if err != nil {
		t.Fatalf("NewSentinelPool: %v", err)
	}
	defer withPassword.Close()
	if served, err := write(withPassword.Pool(), "k", "v"); err != nil || served != primary {
		t.Fatalf("write with the sentinel password went to %q, %v; want %s", served, err, primary)
	}
	testkit.Eventually(t, 10*time.Second, "subscribed with the sentinel password", func() error {
		return watchingWith(c, password)
	})
}

func TestSentinelPoolCloseStopsItsGoroutines(t *testing.T) {
	t.Run("subscribed", func(t *testing.T) {
		c := testsvc.StartSentinelCluster(t)
		before := runtime.NumGoroutine()
		sp := newSentinelPool(t, c)
		if _, err := write(sp.Pool(), "k", "v"); err != nil {
			t.Fatalf("SET: %v", err)
		}
		testkit.Eventually(t, 10*time.Second, "pool subscribed", func() error { return watching(c) })
		if err := sp.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		goroutinesBackTo(t, before)
		if _, err := sp.Pool().GetContext(context.Background()); err == nil {
			t.Error("get from a closed pool succeeded")
		}
	})
	t.Run("no sentinel reachable", func(t *testing.T) {
		before := runtime.NumGoroutine()
		sp, err := redisx.NewSentinelPool(redisx.SentinelOptions{
			Addrs:      []string{"127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))},
			MasterName: "hallpass",
		})
		if err != nil {
			t.Fatalf("NewSentinelPool: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // let the watcher fail once and back off
		if err := sp.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		goroutinesBackTo(t, before)
	})
}

func goroutinesBackTo(t *testing.T, want int) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, "goroutines back to their number before the pool", func() error {
		if n := runtime.NumGoroutine(); n > want {
			return fmt.Errorf("%d goroutines, had %d", n, want)
		}
		return nil
	})
}

func TestNewSentinelPoolRejectsInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts redisx.SentinelOptions
	}{
		{"no sentinels", redisx.SentinelOptions{MasterName: "m"}},
		{"no master name", redisx.SentinelOptions{Addrs: []string{"127.0.0.1:26379"}}},
		{"master name with a space", redisx.SentinelOptions{Addrs: []string{"127.0.0.1:26379"}, MasterName: "a b"}},
		{"address without port", redisx.SentinelOptions{Addrs: []string{"127.0.0.1"}, MasterName: "m"}},
		{"bad port", redisx.SentinelOptions{Addrs: []string{"127.0.0.1:0"}, MasterName: "m"}},
		{"no host", redisx.SentinelOptions{Addrs: []string{":26379"}, MasterName: "m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := redisx.NewSentinelPool(tc.opts)
			if err == nil {
				sp.Close()
				t.Fatal("NewSentinelPool succeeded")
			}
			if !errors.Is(err, redisx.ErrInvalidSentinelOptions) {
				t.Fatalf("error %v is not ErrInvalidSentinelOptions", err)
			}
		})
	}
}

func TestWaitReplicas(t *testing.T) {
	c := testsvc.StartSentinelCluster(t)
	sp := newSentinelPool(t, c)
	ctx := context.Background()
	conn, err := sp.Pool().GetContext(ctx)
	if err != nil {
		t.Fatalf("get connection: %v", err)
	}
	defer conn.Close()

	if _, err := conn.Do("SET", "k", "1"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if n, err := redisx.WaitReplicas(ctx, conn, 1, 2*time.Second); err != nil || n != 1 {
		t.Fatalf("WaitReplicas with the replica up = %d, %v; want 1", n, err)
	}

	replica := c.Replica(t)
	replica.Pause(t)
	if _, err := conn.Do("SET", "k", "2"); err != nil {
		t.Fatalf("SET with the replica paused: %v", err)
	}
	const timeout = 300 * time.Millisecond
	start := time.Now()
	n, err := redisx.WaitReplicas(ctx, conn, 1, timeout)
	took := time.Since(start)
	if err != nil || n != 0 {
		t.Fatalf("WaitReplicas with the replica paused = %d, %v; want 0", n, err)
	}
	if took < timeout || took > timeout+500*time.Millisecond {
		t.Errorf("WaitReplicas with the replica paused took %s, want about %s", took, timeout)
	}

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	n, err = redisx.WaitReplicas(short, conn, 1, 5*time.Second)
	if took := time.Since(start); err != nil || n != 0 || took > time.Second {
		t.Errorf("WaitReplicas under a 100ms deadline = %d, %v after %s; want 0 soon", n, err, took)
	}

	replica.Resume(t)
	if n, err := redisx.WaitReplicas(ctx, conn, 1, 5*time.Second); err != nil || n != 1 {
		t.Fatalf("WaitReplicas after the replica resumed = %d, %v; want 1", n, err)
	}
	if _, err := redisx.WaitReplicas(ctx, conn, 1, 0); err == nil {
		t.Error("WaitReplicas with no timeout succeeded; it would block forever")
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

// roleAt returns the role of the server at addr, or "" if it cannot tell.
func roleAt(addr string) string {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(time.Second))
	if err != nil {
		return ""
	}
	defer c.Close()
	role, err := redis.Values(c.Do("ROLE"))
	if err != nil || len(role) == 0 {
		return ""
	}
	s, _ := redis.String(role[0], nil)
	return s
}

// since formats t as an offset from start, or "never".
func since(start, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(start).Round(time.Millisecond).String()
}
