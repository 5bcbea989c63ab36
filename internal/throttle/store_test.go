package throttle_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/throttle/throttletest"
)

func TestMemoryStoreContract(t *testing.T) {
	throttletest.Run(t, func(t *testing.T, now func() time.Time) throttle.Store {
		return throttle.NewMemoryStore(now)
	})
}

func TestRedisStoreContract(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool := newRedisPool(t, srv.URL)
	throttletest.Run(t, func(t *testing.T, now func() time.Time) throttle.Store {
		return throttle.NewRedisStore(pool, now)
	})
}

func newRedisPool(t *testing.T, url string) *redis.Pool {
	t.Helper()
	pool, err := redisx.NewPool(url, redisx.DefaultPoolOptions())
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// strictPolicy blocks from the first failure, for tests about Redis itself.
var strictPolicy = throttle.Policy{Limit: 0, Window: time.Hour, BaseDelay: time.Minute, MaxDelay: time.Hour}

func TestFailuresCountAcrossReplicas(t *testing.T) {
	srv := testsvc.StartRedis(t)
	p := throttle.DefaultLoginPolicy()
	replicas := []throttle.Store{
		throttle.NewRedisStore(newRedisPool(t, srv.URL), nil),
		throttle.NewRedisStore(newRedisPool(t, srv.URL), nil),
		throttle.NewRedisStore(newRedisPool(t, srv.URL), nil),
	}
	ctx := context.Background()
	const key = "login:user:alice"
	// Round robin, as the load balancer sends them.
	for i := range p.Limit {
		if wait, err := replicas[i%3].Fail(ctx, key, p); err != nil || wait != 0 {
			t.Fatalf("failure %d on replica %d = %s, %v; want 0, nil", i+1, i%3, wait, err)
		}
	}
	wait, err := replicas[p.Limit%3].Fail(ctx, key, p)
	if err != nil || !near(wait, p.BaseDelay) {
		t.Fatalf("failure %d = %s, %v; want about %s", p.Limit+1, wait, err, p.BaseDelay)
	}
	for i, r := range replicas {
		if wait, err := r.Check(ctx, key, p); err != nil || !near(wait, p.BaseDelay) {
			t.Errorf("replica %d Check = %s, %v; want about %s", i, wait, err, p.BaseDelay)
		}
	}
	if err := replicas[0].Reset(ctx, key); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	for i, r := range replicas {
		if wait, err := r.Check(ctx, key, p); err != nil || wait != 0 {
			t.Errorf("replica %d Check after Reset = %s, %v; want 0", i, wait, err)
		}
	}
}

// near reports whether got is want less the few real milliseconds a test
// may take between two calls.
func near(got, want time.Duration) bool {
	return got <= want && got > want-time.Second
}

func TestRedisStoreKeepsNoUserNameOrIPInClearText(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := throttle.NewRedisStore(newRedisPool(t, srv.URL), nil)
	ctx := context.Background()
	secrets := []string{"alice@example.com", "203.0.113.9", "2001:db8::7", "bob"}
	keys := []string{
		"login:user:alice@example.com", "login:ip:203.0.113.9",
		"login:ip:2001:db8::7", "signup:ip:203.0.113.9", "login:user:bob",
	}
	for _, key := range keys {
		for range 3 { // past the limit, so both Redis keys exist
			if _, err := store.Fail(ctx, key, strictPolicy); err != nil {
				t.Fatalf("Fail: %v", err)
			}
		}
	}

	c := srv.Conn(t)
	names, err := redis.Strings(c.Do("KEYS", "*"))
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	if len(names) != 2*len(keys) {
		t.Fatalf("Redis holds %d keys, want 2 per throttled key (%d): %q", len(names), 2*len(keys), names)
	}
	for _, name := range names {
		var contents []string
		switch typ, _ := redis.String(c.Do("TYPE", name)); typ {
		case "string":
			v, err := redis.String(c.Do("GET", name))
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			contents = []string{v}
		case "hash":
			contents, err = redis.Strings(c.Do("HGETALL", name))
			if err != nil {
				t.Fatalf("HGETALL: %v", err)
			}
		default:
			t.Fatalf("unexpected %s key %q", typ, name)
		}
		for _, s := range append(contents, name) {
			for _, secret := range secrets {
				if strings.Contains(s, secret) {
					t.Errorf("Redis key %q holds %q in clear text", name, secret)
				}
			}
		}
		if !strings.HasPrefix(name, "hp:th:{") {
			t.Errorf("Redis key %q lacks the throttle prefix", name)
		}
		// Nothing is kept for good.
		ttl, err := redis.Int64(c.Do("PTTL", name))
		if err != nil || ttl <= 0 || ttl > (strictPolicy.MaxDelay+strictPolicy.Window).Milliseconds() {
			t.Errorf("PTTL %q = %d, %v; want within (0, max delay + window]", name, ttl, err)
		}
	}
}

func TestRedisStoreKeysExpireInRealTimeOnceTheyNoLongerMatter(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := throttle.NewRedisStore(newRedisPool(t, srv.URL), nil)
	ctx := context.Background()
	p := throttle.Policy{Limit: 0, Window: 200 * time.Millisecond, BaseDelay: 100 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
	const key = "login:user:alice"
	if wait, err := store.Fail(ctx, key, p); err != nil || wait != p.BaseDelay {
		t.Fatalf("Fail = %s, %v; want %s", wait, err, p.BaseDelay)
	}
	c := srv.Conn(t)
	testkit.Eventually(t, 5*time.Second, "Check to allow again", func() error {
		wait, err := store.Check(ctx, key, p)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if wait != 0 {
			return fmt.Errorf("Check = %s, want 0", wait)
		}
		return nil
	})
	testkit.Eventually(t, 5*time.Second, "Redis to drop the key's failures", func() error {
		names, err := redis.Strings(c.Do("KEYS", "hp:th:*"))
		if err != nil {
			t.Fatalf("KEYS: %v", err)
		}
		if len(names) != 0 {
			return fmt.Errorf("Redis still holds %q", names)
		}
		return nil
	})
}

func TestRedisStoreClockAheadCannotBlockLongerThanMaxDelay(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool := newRedisPool(t, srv.URL)
	clk := testkit.NewClock(time.Now())
	ahead := throttle.NewRedisStore(pool, func() time.Time { return clk.Now().Add(24 * time.Hour) })
	store := throttle.NewRedisStore(pool, clk.Now)
	ctx := context.Background()
	const key = "login:user:alice"
	if _, err := ahead.Fail(ctx, key, strictPolicy); err != nil {
		t.Fatalf("Fail: %v", err)
	}
	if wait, err := store.Check(ctx, key, strictPolicy); err != nil || wait != strictPolicy.MaxDelay {
		t.Fatalf("Check = %s, %v; want the cap, %s", wait, err, strictPolicy.MaxDelay)
	}
}

func TestRedisStoreCheckFailAndResetAreOneRoundTripEach(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool, sent := testsvc.CountingPool(t, srv.URL)
	store := throttle.NewRedisStore(pool, nil)
	ctx := context.Background()
	const key = "login:user:alice"
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Check", func() error { _, err := store.Check(ctx, key, strictPolicy); return err }},
		{"Fail", func() error { _, err := store.Fail(ctx, key, strictPolicy); return err }},
		{"Reset", func() error { return store.Reset(ctx, key) }},
	} {
		// Twice: the first Fail may load its script (EVALSHA, then EVAL).
		for i := range 2 {
			before := sent.Load()
			if err := tc.call(); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got := sent.Load() - before; i == 1 && got != 1 {
				t.Errorf("%s sent %d commands, want 1", tc.name, got)
			}
		}
	}
}

func TestRedisStoreFailsFastWhileRedisIsDownAndRecovers(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := throttle.NewRedisStore(newRedisPool(t, srv.URL), nil)
	ctx := context.Background()
	const key = "login:user:alice"
	if _, err := store.Fail(ctx, key, strictPolicy); err != nil {
		t.Fatalf("Fail: %v", err)
	}

	srv.Stop(t)
	checkFailsFast(t, "Check", func() error { _, err := store.Check(ctx, key, strictPolicy); return err })
	checkFailsFast(t, "Fail", func() error { _, err := store.Fail(ctx, key, strictPolicy); return err })
	checkFailsFast(t, "Reset", func() error { return store.Reset(ctx, key) })
	checkFailsFast(t, "Ping", func() error { return store.Ping(ctx) })

	srv.Start(t)
	// A connection pooled before the outage may fail once; then the pool
	// dials afresh. The restarted Redis is empty.
	testkit.Eventually(t, 5*time.Second, "the store to recover", func() error {
		wait, err := store.Fail(ctx, key, strictPolicy)
		if err != nil {
			return err
		}
		if wait != strictPolicy.BaseDelay {
			return fmt.Errorf("Fail = %s, want %s", wait, strictPolicy.BaseDelay)
		}
		return nil
	})
}

func TestRedisStoreDoesNotHangOnAFrozenRedis(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := throttle.NewRedisStore(newRedisPool(t, srv.URL), nil)
	srv.Pause(t)
	t.Cleanup(func() { srv.Resume(t) })

	// No deadline from the caller: the store's own bound applies.
	checkFailsFast(t, "Check", func() error {
		_, err := store.Check(context.Background(), "login:user:alice", strictPolicy)
		return err
	})

	// A caller's shorter deadline wins.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := store.Fail(ctx, "login:user:alice", strictPolicy); err == nil {
		t.Fatal("Fail on a frozen Redis succeeded")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Fail with a 100ms deadline took %s", took)
	}
}

// checkFailsFast runs op against an unreachable Redis and wants a wrapped
// error within the store's 2s bound (plus scheduling slack).
func checkFailsFast(t *testing.T, name string, op func() error) {
	t.Helper()
	start := time.Now()
	err := op()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("%s with Redis unreachable succeeded", name)
	}
	if errors.Is(err, throttle.ErrInvalidPolicy) {
		t.Fatalf("%s with Redis unreachable = %v", name, err)
	}
	if !strings.HasPrefix(err.Error(), "throttle: ") {
		t.Errorf("%s error %q lacks the store's context", name, err)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("%s took %s to fail, want at most 2s", name, took)
	}
}

// TestRedisStoreRefusesToCountWhenRedisCannotWrite makes Redis unable to
// keep a count — full (maxmemory with noeviction), and read-only (a replica)
// — and checks that Attempt and Fail report an error instead of an allowed
// attempt, so the caller can fail closed: a throttle that silently stops
// counting is an unlimited password oracle.
func TestRedisStoreRefusesToCountWhenRedisCannotWrite(t *testing.T) {
	srv := testsvc.StartRedis(t)
	s := throttle.NewRedisStore(newRedisPool(t, srv.URL), nil)
	conn := srv.Conn(t)
	ctx := context.Background()
	p := throttle.DefaultLoginPolicy()
	// Loads the scripts while Redis can still take them.
	if _, err := s.Attempt(ctx, "login:user:warm-up", p); err != nil {
		t.Fatal(err)
	}
	cannotWrite := func(how string) {
		t.Helper()
		if w, err := s.Attempt(ctx, "login:user:alice", p); err == nil {
			t.Errorf("%s: Attempt allowed the attempt (wait %v), want an error", how, w)
		}
		if _, err := s.Fail(ctx, "login:user:alice", p); err == nil {
			t.Errorf("%s: Fail reported success, want an error", how)
		}
		if err := s.Forgive(ctx, "login:user:warm-up", p); err == nil {
			t.Errorf("%s: Forgive reported success, want an error", how)
		}
	}

	for _, cmd := range [][]any{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		if _, err := conn.Do("CONFIG", append([]any{"SET"}, cmd...)...); err != nil {
			t.Fatal(err)
		}
	}
	cannotWrite("Redis at maxmemory")
	if _, err := conn.Do("CONFIG", "SET", "maxmemory", "0"); err != nil {
		t.Fatal(err)
	}

	// A replica of a primary that is not there: read-only, never synced.
	if _, err := conn.Do("REPLICAOF", "127.0.0.1", testsvc.FreePort(t)); err != nil {
		t.Fatal(err)
	}
	cannotWrite("Redis read-only")
	if _, err := conn.Do("REPLICAOF", "NO", "ONE"); err != nil {
		t.Fatal(err)
	}
	if w, err := s.Attempt(ctx, "login:user:alice", p); err != nil || w.Wait != 0 {
		t.Fatalf("after Redis could write again: Attempt = %v, %v; want an allowed attempt", w, err)
	}
}
