package session_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/testsvc"
)

func TestMemoryStoreContract(t *testing.T) {
	sessiontest.RunStoreContract(t, func(t *testing.T, opts session.Options) session.Store {
		return session.NewMemoryStore(opts)
	})
}

func TestRedisStoreContract(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool := newRedisPool(t, srv.URL)
	sessiontest.RunStoreContract(t, func(t *testing.T, opts session.Options) session.Store {
		return session.NewRedisStore(pool, opts)
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

func TestRedisStoreNeverHoldsARawToken(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()

	var tokens []string
	for i := range 6 {
		token := sessiontest.NewToken(t)
		tokens = append(tokens, token)
		key := sessiontest.HashToken(token)
		if _, err := store.Create(ctx, key, 42, []byte("user=42"), time.Now().Add(time.Hour), session.Limit{}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if i%2 == 0 {
			if err := store.DeleteCtx(ctx, key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
	}

	c := srv.Conn(t)
	keys, err := redis.Strings(c.Do("KEYS", "*")) // a test-only scan of a test-only server
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	// 3 sessions, 3 tombstones, the user's index and the global one.
	if len(keys) != len(tokens)+2 {
		t.Errorf("Redis holds %d keys, want %d: %q", len(keys), len(tokens)+2, keys)
	}
	for _, k := range keys {
		var content []string
		switch typ, _ := redis.String(c.Do("TYPE", k)); typ {
		case "string":
			v, err := redis.String(c.Do("GET", k))
			if err != nil {
				t.Fatalf("GET %s: %v", k, err)
			}
			content = []string{v}
		case "zset":
			if content, err = redis.Strings(c.Do("ZRANGE", k, 0, -1)); err != nil {
				t.Fatalf("ZRANGE %s: %v", k, err)
			}
		default:
			t.Fatalf("key %s has unexpected type %q", k, typ)
		}
		for _, token := range tokens {
			if strings.Contains(k, token) || strings.Contains(strings.Join(content, " "), token) {
				t.Errorf("key %q or its value holds a raw token", k)
			}
		}
	}
}

// TestRedisStoreFindIsOneCommand holds the hot path to a single GET and the
// writes to a single script call each.
func TestRedisStoreFindIsOneCommand(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	key := sessiontest.NewKey(t)
	// Warm up: the first script calls load the scripts (EVALSHA, then EVAL).
	if _, err := store.Create(ctx, key, 7, []byte("v"), time.Now().Add(time.Hour), session.Limit{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := store.CommitCtx(ctx, key, []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := store.DeleteCtx(ctx, sessiontest.NewKey(t)); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	c := srv.Conn(t)
	if _, err := c.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	const n = 10
	for range n {
		if _, found, err := store.FindCtx(ctx, key); err != nil || !found {
			t.Fatalf("Find = found %v, err %v", found, err)
		}
	}
	stats := commandStats(t, c)
	for cmd, calls := range stats {
		if strings.HasPrefix(cmd, "config") || cmd == "info" {
			continue // the test's own
		}
		if cmd != "get" || calls != n {
			t.Errorf("%d Finds ran %d %s commands; want exactly %d GETs and nothing else (all: %v)", n, calls, cmd, n, stats)
		}
	}

	if _, err := c.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	for range n {
		if err := store.CommitCtx(ctx, key, []byte("v"), time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if err := store.DeleteCtx(ctx, sessiontest.NewKey(t)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	stats = commandStats(t, c)
	if stats["evalsha"] != 2*n || stats["eval"] != 0 || stats["multi"] != 0 || stats["get"] != 0 {
		t.Errorf("%d Commits and %d Deletes: want %d EVALSHA and no other round trips; stats %v", n, n, 2*n, stats)
	}

}

// TestRedisStoreRegistryCallsAreOneRoundTripEach counts what the store sends
// on its connections: each registry call is one command (a script or a GET).
func TestRedisStoreRegistryCallsAreOneRoundTripEach(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool, sent := testsvc.CountingPool(t, srv.URL)
	store := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	const user = 7
	key := sessiontest.NewKey(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"Create", func() error {
			_, err := store.Create(ctx, sessiontest.NewKey(t), user, []byte("v"), time.Now().Add(time.Hour), session.Limit{Max: 2, Policy: session.EvictOldest})
			return err
		}},
		{"ListUser", func() error { _, err := store.ListUser(ctx, user); return err }},
		{"Revoke", func() error { _, err := store.Revoke(ctx, user, []string{key}, session.EndedByAdmin); return err }},
		{"RevokeUser", func() error { _, err := store.RevokeUser(ctx, user, "", session.EndedByAdmin); return err }},
		{"EndReason", func() error { _, err := store.EndReason(ctx, key); return err }},
		{"Count", func() error { _, err := store.Count(ctx); return err }},
		{"Recent", func() error { _, err := store.Recent(ctx, 0, 10); return err }},
	}
	if _, err := store.Create(ctx, key, user, []byte("v"), time.Now().Add(time.Hour), session.Limit{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	for _, call := range calls {
		// Twice: the first call may load its script (EVALSHA, then EVAL).
		for i := range 2 {
			if _, err := store.Create(ctx, sessiontest.NewKey(t), user, []byte("v"), time.Now().Add(time.Hour), session.Limit{}); err != nil {
				t.Fatalf("Create: %v", err)
			}
			before := sent.Load()
			if err := call.call(); err != nil {
				t.Fatalf("%s: %v", call.name, err)
			}
			if got := sent.Load() - before; i == 1 && got != 1 {
				t.Errorf("%s sent %d commands, want 1", call.name, got)
			}
		}
	}
}

// commandStats returns calls per command since the last CONFIG RESETSTAT.
func commandStats(t *testing.T, c redis.Conn) map[string]int {
	t.Helper()
	info, err := redis.String(c.Do("INFO", "commandstats"))
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	stats := map[string]int{}
	for line := range strings.SplitSeq(info, "\r\n") {
		// cmdstat_get:calls=10,usec=...
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || name == line {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("INFO commandstats line %q: %v", line, err)
		}
		stats[name] = n
	}
	return stats
}

func TestRedisStoreFailsFastWhileRedisIsDownAndRecovers(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	key := sessiontest.NewKey(t)
	if _, err := store.Create(ctx, key, 7, []byte("v"), time.Now().Add(time.Hour), session.Limit{}); err != nil {
		t.Fatalf("Create: %v", err)
	}

	srv.Stop(t)
	checkFailsFast(t, "Find", func() error { _, _, err := store.FindCtx(ctx, key); return err })
	checkFailsFast(t, "Commit", func() error { return store.CommitCtx(ctx, key, []byte("v"), time.Now().Add(time.Hour)) })
	checkFailsFast(t, "Delete", func() error { return store.DeleteCtx(ctx, key) })
	checkFailsFast(t, "Ping", func() error { return store.Ping(ctx) })
	checkFailsFast(t, "Create", func() error {
		_, err := store.Create(ctx, sessiontest.NewKey(t), 7, []byte("v"), time.Now().Add(time.Hour), session.Limit{})
		return err
	})
	checkFailsFast(t, "ListUser", func() error { _, err := store.ListUser(ctx, 7); return err })
	checkFailsFast(t, "Revoke", func() error { _, err := store.Revoke(ctx, 7, []string{key}, session.EndedByAdmin); return err })
	checkFailsFast(t, "RevokeUser", func() error { _, err := store.RevokeUser(ctx, 7, "", session.EndedByAdmin); return err })
	checkFailsFast(t, "EndReason", func() error { _, err := store.EndReason(ctx, key); return err })
	checkFailsFast(t, "Count", func() error { _, err := store.Count(ctx); return err })
	checkFailsFast(t, "Recent", func() error { _, err := store.Recent(ctx, 0, 10); return err })

	srv.Start(t)
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		// A connection pooled before the outage may fail once; then the
		// pool dials afresh. The restarted Redis is empty, so the user
		// signs in again.
		_, err := store.Create(ctx, key, 7, []byte("back"), time.Now().Add(time.Hour), session.Limit{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store still failing 5s after Redis came back: %v", err)
		}
		<-tick.C
	}
	if b, found, err := store.FindCtx(ctx, key); err != nil || !found || string(b) != "back" {
		t.Fatalf("Find after recovery = %q, %v, %v; want back, true, nil", b, found, err)
	}
}

func TestRedisStoreDoesNotHangOnAFrozenRedis(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	key := sessiontest.NewKey(t)
	srv.Pause(t)
	t.Cleanup(func() { srv.Resume(t) })

	// No deadline from the caller: the store's own bound applies.
	checkFailsFast(t, "Find", func() error { _, _, err := store.FindCtx(context.Background(), key); return err })

	// A caller's shorter deadline wins.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := store.FindCtx(ctx, key); err == nil {
		t.Fatal("Find on a frozen Redis succeeded")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Find with a 100ms deadline took %s", took)
	}
}

// checkFailsFast runs op against an unreachable Redis and wants an error,
// not ErrRevoked, within the store's 2s bound (plus scheduling slack).
func checkFailsFast(t *testing.T, name string, op func() error) {
	t.Helper()
	start := time.Now()
	err := op()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("%s with Redis down succeeded", name)
	}
	if errors.Is(err, session.ErrRevoked) {
		t.Fatalf("%s with Redis down = %v, a revocation rather than an outage", name, err)
	}
	if !strings.HasPrefix(err.Error(), "session store: ") {
		t.Errorf("%s error %q lacks the store's context", name, err)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("%s took %s to fail, want at most 2s", name, took)
	}
}

// TestRedisStoreLeavesNoSessionKeyBehind checks Redis itself: a signed-out or
// revoked session's key is gone, and its tombstone holds the reason.
func TestRedisStoreLeavesNoSessionKeyBehind(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	const user = 7
	var keys []string
	for range 5 {
		k := sessiontest.NewKey(t)
		keys = append(keys, k)
		if _, err := store.Create(ctx, k, user, []byte("v"), time.Now().Add(time.Hour), session.Limit{}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if err := store.DeleteCtx(ctx, keys[0]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := store.Revoke(ctx, user, keys[1:2], session.EndedByAdmin); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := store.RevokeUser(ctx, user, keys[4], session.EndedPasswordChanged); err != nil {
		t.Fatalf("RevokeUser: %v", err)
	}

	c := srv.Conn(t)
	want := map[string]string{
		keys[0]: string(session.EndedSignedOut),
		keys[1]: string(session.EndedByAdmin),
		keys[2]: string(session.EndedPasswordChanged),
		keys[3]: string(session.EndedPasswordChanged),
	}
	for k, reason := range want {
		if n, err := redis.Int(c.Do("EXISTS", "hp:s:"+k)); err != nil || n != 0 {
			t.Errorf("EXISTS hp:s:<ended key> = %d, %v; want 0", n, err)
		}
		if got, err := redis.String(c.Do("GET", "hp:t:"+k)); err != nil || got != reason {
			t.Errorf("GET hp:t:<ended key> = %q, %v; want %q", got, err, reason)
		}
		if _, err := redis.Float64(c.Do("ZSCORE", "hp:all", k)); !errors.Is(err, redis.ErrNil) {
			t.Errorf("an ended session is still in hp:all (err %v)", err)
		}
	}
	// The user's index: only the live session left (RevokeUser pruned
	// the signed-out one Delete could not unindex), expiring with it.
	members, err := redis.Strings(c.Do("ZRANGE", "hp:u:7", 0, -1))
	if err != nil || len(members) != 1 || members[0] != keys[4] {
		t.Errorf("hp:u:7 = %d members, %v; want just the live session", len(members), err)
	}
	if ttl, err := redis.Int64(c.Do("PTTL", "hp:u:7")); err != nil || ttl <= 0 || ttl > time.Hour.Milliseconds() {
		t.Errorf("PTTL hp:u:7 = %d, %v; want (0, 1h]", ttl, err)
	}
}

// TestRedisStoreListUserTouchesOnlyThatUsersKeys lists a user with 5
// sessions among 2,000 others and checks, in Redis's own command counts,
// that nothing scanned the keyspace or read another user's session.
func TestRedisStoreListUserTouchesOnlyThatUsersKeys(t *testing.T) {
	srv := testsvc.StartRedis(t)
	store := session.NewRedisStore(newRedisPool(t, srv.URL), session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	ctx := context.Background()
	const (
		user   = 1
		others = 2000
	)
	expiry := time.Now().Add(time.Hour)
	for i := range others {
		if _, err := store.Create(ctx, sessiontest.NewKey(t), int64(2+i%100), []byte("other"), expiry, session.Limit{}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	for range 5 {
		if _, err := store.Create(ctx, sessiontest.NewKey(t), user, []byte("mine"), expiry, session.Limit{}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}

	c := srv.Conn(t)
	if _, err := c.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	entries, err := store.ListUser(ctx, user)
	if err != nil {
		t.Fatalf("ListUser: %v", err)
	}
	if len(entries) != 5 {
		t.Fatalf("ListUser = %d entries, want 5", len(entries))
	}
	for _, e := range entries {
		if string(e.Data) != "mine" {
			t.Fatalf("ListUser returned another user's session")
		}
	}
	stats := commandStats(t, c)
	for _, cmd := range []string{"keys", "scan", "sscan", "zscan", "hscan"} {
		if stats[cmd] != 0 {
			t.Errorf("ListUser ran %s: %v", cmd, stats)
		}
	}
	// Commands inside the script are counted too: one read per session.
	if stats["evalsha"] != 1 || stats["get"] != 5 || stats["zrange"] != 1 {
		t.Errorf("ListUser of 5 sessions: want 1 EVALSHA running 1 ZRANGE and 5 GETs; stats %v", stats)
	}
}

// BenchmarkRedisRevokeUser revokes one user's 10 sessions among 10,000 and
// 100,000 others: the cost should not grow with the others.
func BenchmarkRedisRevokeUser(b *testing.B) {
	for _, others := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			if others > 10_000 && testing.Short() {
				b.Skip("seeding 100,000 sessions is slow; skipped with -short")
			}
			srv := testsvc.StartRedis(b)
			pool, err := redisx.NewPool(srv.URL, redisx.DefaultPoolOptions())
			if err != nil {
				b.Fatalf("NewPool: %v", err)
			}
			b.Cleanup(func() { pool.Close() })
			store := session.NewRedisStore(pool, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
			ctx := context.Background()
			seedSessions(b, srv.Conn(b), others, time.Now().Add(time.Hour))
			if n, err := store.Count(ctx); err != nil || n != others {
				b.Fatalf("Count after seeding = %d, %v; want %d", n, err, others)
			}

			const user, sessions = 1, 10
			expiry := time.Now().Add(time.Hour)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for range sessions {
					if _, err := store.Create(ctx, sessiontest.NewKey(b), user, []byte("mine"), expiry, session.Limit{}); err != nil {
						b.Fatalf("Create: %v", err)
					}
				}
				b.StartTimer()
				n, err := store.RevokeUser(ctx, user, "", session.EndedByAdmin)
				if err != nil || n != sessions {
					b.Fatalf("RevokeUser = %d, %v; want %d", n, err, sessions)
				}
			}
		})
	}
}

// seedSessions writes n sessions of other users (100 sessions each) straight
// into Redis, in the store's layout, pipelined in batches.
func seedSessions(b *testing.B, c redis.Conn, n int, expiry time.Time) {
	b.Helper()
	const batch = 1000
	ttl := time.Until(expiry).Milliseconds()
	score := expiry.UnixMilli()
	for i := 0; i < n; i += batch {
		for j := i; j < min(i+batch, n); j++ {
			key := fmt.Sprintf("seed-%d", j)
			user := fmt.Sprintf("hp:u:%d", 2+j/100)
			c.Send("SET", "hp:s:"+key, "other", "PX", ttl)
			c.Send("ZADD", user, score, key)
			c.Send("PEXPIRE", user, ttl)
			c.Send("ZADD", "hp:all", score, key)
		}
		if err := c.Flush(); err != nil {
			b.Fatalf("seed: %v", err)
		}
		for j := i; j < min(i+batch, n); j++ {
			for range 4 {
				if _, err := c.Receive(); err != nil {
					b.Fatalf("seed: %v", err)
				}
			}
		}
	}
}
