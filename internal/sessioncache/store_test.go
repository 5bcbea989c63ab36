package sessioncache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/sessioncache"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// The caching store is a session.Store like any other: the whole contract
// holds with the cache in front, each case on a replica of its own.
func TestCachingStoreContract(t *testing.T) {
	srv := testsvc.StartRedis(t)
	r := startReplica(t, srv.URL, "contract", replicaOptions{})
	sessiontest.RunStoreContract(t, func(t *testing.T, opts session.Options) session.Store {
		return sessioncache.NewStore(session.NewRedisStore(r.pool, opts), r.link)
	})
}

// A signed-in page view reads its session once from Redis; the views after
// it cost no Redis command at all.
func TestRepeatReadsCostNoRedisCommand(t *testing.T) {
	srv := testsvc.StartRedis(t)
	counted, sent := testsvc.CountingPool(t, srv.URL)
	plain := startReplica(t, srv.URL, "plain", replicaOptions{})
	r := startReplica(t, srv.URL, "counted", replicaOptions{pool: counted, dial: plain.pool.DialContext})
	key := createSession(t, plain, 1)
	// The first read fills the cache; the creation's own invalidation may
	// land after it and drop the entry, so wait for it and read again.
	before := sent.Load()
	find(t, r, key)
	testkit.Eventually(t, time.Second, "the creation's invalidation", func() error {
		if r.store.Stats().Invalidations == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	find(t, r, key)
	if got := sent.Load() - before; got < 2 || got > 4 {
		t.Fatalf("the first reads sent %d Redis commands, want 2 or 4 (GET and PTTL, once or twice)", got)
	}

	before, hits := sent.Load(), r.store.Stats().Hits
	for i := range 1000 {
		if !find(t, r, key) {
			t.Fatalf("read %d: session not found", i)
		}
	}
	if got := sent.Load() - before; got != 0 {
		t.Errorf("1000 reads of a cached session sent %d Redis commands, want 0", got)
	}
	if got := r.store.Stats().Hits - hits; got != 1000 {
		t.Errorf("cache hits = %d of 1000 reads", got)
	}
}

// revocations lists every way one replica ends a session another replica
// may have cached.
var revocations = []struct {
	name   string
	revoke func(t testing.TB, r *replica, userID int64, key string)
}{
	{"sign-out", func(t testing.TB, r *replica, _ int64, key string) {
		if err := r.store.DeleteCtx(context.Background(), key); err != nil {
			t.Fatalf("DeleteCtx: %v", err)
		}
	}},
	{"revoke-one", func(t testing.TB, r *replica, userID int64, key string) {
		if n, err := r.store.Revoke(context.Background(), userID, []string{key}, session.EndedFromOtherDevice); err != nil || n != 1 {
			t.Fatalf("Revoke = %d, %v; want 1", n, err)
		}
	}},
	{"revoke-user", func(t testing.TB, r *replica, userID int64, _ string) {
		if n, err := r.store.RevokeUser(context.Background(), userID, "", session.EndedByAdmin); err != nil || n != 1 {
			t.Fatalf("RevokeUser = %d, %v; want 1", n, err)
		}
	}},
	{"revoke-everyone", func(t testing.TB, r *replica, userID int64, _ string) {
		if n, err := r.store.RevokeUsers(context.Background(), []int64{userID}, "", session.EndedEveryone); err != nil || n != 1 {
			t.Fatalf("RevokeUsers = %d, %v; want 1", n, err)
		}
	}},
	{"evicted-by-limit", func(t testing.TB, r *replica, userID int64, key string) {
		evicted, err := r.store.Create(context.Background(), sessiontest.NewKeyFor(t, userID), userID, []byte("newer"),
			time.Now().Add(time.Hour), session.Limit{Max: 1, Policy: session.EvictOldest}, session.Origin{})
		if err != nil || len(evicted) != 1 || evicted[0] != key {
			t.Fatalf("Create over the limit evicted %v, %v; want [%s]", evicted, err, key)
		}
	}},
	{"replaced-at-sign-in", func(t testing.TB, r *replica, userID int64, key string) {
		if _, err := r.store.Create(context.Background(), sessiontest.NewKeyFor(t, userID), userID, []byte("renewed"),
			time.Now().Add(time.Hour), session.Limit{}, session.Origin{Replaces: key}); err != nil {
			t.Fatalf("Create replacing: %v", err)
		}
	}},
}

// The guarantee itself, tried 1 000 times: once a revocation on one
// replica has returned, the other replicas refuse the session on the very
// next request, although each had it cached a moment before.
func TestRevokedOnOneReplicaIsNeverServedByAnother(t *testing.T) {
	srv := testsvc.StartRedis(t)
	a := startReplica(t, srv.URL, "app1", replicaOptions{})
	b := startReplica(t, srv.URL, "app2", replicaOptions{})
	c := startReplica(t, srv.URL, "app3", replicaOptions{})
	const trials = 1002
	var lapsed uint64
	for i := range trials {
		how := revocations[i%len(revocations)]
		userID := sessiontest.NewUserID(t)
		key := createSession(t, a, userID)
		cacheIt(t, b, key)
		cacheIt(t, c, key)
		before := a.store.Stats().FencesLapsed
		how.revoke(t, a, userID, key)
		lapsed += a.store.Stats().FencesLapsed - before
		for _, r := range []*replica{b, c, a} {
			if find(t, r, key) {
				t.Fatalf("trial %d (%s): %s served the session after the revocation returned", i, how.name, r.link.ID())
			}
		}
	}
	t.Logf("%d revocations, %d waited out a lease (a replica did not confirm in time)", trials, lapsed)
	if lapsed > trials/100 {
		t.Errorf("%d of %d revocations waited out the lease; healthy replicas should confirm", lapsed, trials)
	}
}

// Readers hammering a replica while another revokes: no read that started
// after the revocation returned finds the session.
func TestNoReadAfterARevocationReturnsFindsTheSession(t *testing.T) {
	srv := testsvc.StartRedis(t)
	a := startReplica(t, srv.URL, "app1", replicaOptions{})
	b := startReplica(t, srv.URL, "app2", replicaOptions{})
	for trial := range 50 {
		userID := sessiontest.NewUserID(t)
		key := createSession(t, a, userID)
		var revokedAt atomic.Int64 // UnixNano, once the revocation returned
		var stale atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					started := time.Now().UnixNano()
					_, found, err := b.store.FindCtx(context.Background(), key)
					if err == nil && found {
						if at := revokedAt.Load(); at != 0 && started > at {
							stale.Add(1)
						}
					}
				}
			}()
		}
		time.Sleep(5 * time.Millisecond)
		revocations[trial%len(revocations)].revoke(t, a, userID, key)
		revokedAt.Store(time.Now().UnixNano())
		time.Sleep(5 * time.Millisecond)
		close(stop)
		wg.Wait()
		if n := stale.Load(); n > 0 {
			t.Fatalf("trial %d: %d reads that began after the revocation returned found the session", trial, n)
		}
	}
}

// A replica whose link silently stops delivering (its network path
// stalls) cannot confirm a fence: the revocation waits out the lease, and
// by the time it returns that replica no longer answers from its cache.
func TestARevocationWaitsOutTheLeaseOfAReplicaThatCannotConfirm(t *testing.T) {
	srv := testsvc.StartRedis(t)
	proxy := startStallProxy(t, srv.Addr)
	a := startReplica(t, srv.URL, "app1", replicaOptions{})
	b := startReplica(t, srv.URL, "app2", replicaOptions{dial: func(ctx context.Context) (redis.Conn, error) {
		return redis.DialContext(ctx, "tcp", proxy.addr)
	}})
	userID := sessiontest.NewUserID(t)
	key := createSession(t, a, userID)
	cacheIt(t, b, key)

	proxy.Stall()
	start := time.Now()
	revocations[1].revoke(t, a, userID, key)
	took := time.Since(start)
	if find(t, b, key) {
		t.Fatal("app2, cut off from Redis's invalidations, served the session after the revocation returned")
	}
	if st := a.store.Stats(); st.FencesLapsed != 1 {
		t.Errorf("fences lapsed = %d, want 1 (app2 could not confirm)", st.FencesLapsed)
	}
	if took < sessioncache.Lease-10*time.Millisecond || took > sessioncache.Lease+time.Second {
		t.Errorf("the revocation took %v; it should wait out about one lease (%v) for app2", took, sessioncache.Lease)
	}
	if b.link.Trusted() {
		t.Error("app2 still trusts its cache with its link stalled past the lease")
	}
	proxy.Resume()
	waitTrusted(t, b)
	if find(t, b, key) {
		t.Fatal("app2 served the revoked session once its link came back")
	}
}

// CLIENT KILL of a replica's invalidation connection: it flushes, reads go
// to Redis meanwhile, and it is trusted again by itself.
func TestAKilledLinkFlushesAndRecoversByItself(t *testing.T) {
	srv := testsvc.StartRedis(t)
	a := startReplica(t, srv.URL, "app1", replicaOptions{})
	b := startReplica(t, srv.URL, "app2", replicaOptions{})
	admin := srv.Conn(t)
	for round := range 5 {
		userID := sessiontest.NewUserID(t)
		key := createSession(t, a, userID)
		cacheIt(t, b, key)
		flushes := b.store.Stats().Flushes
		if _, err := admin.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
			t.Fatalf("CLIENT KILL: %v", err)
		}
		revocations[round%len(revocations)].revoke(t, a, userID, key)
		if find(t, b, key) {
			t.Fatalf("round %d: app2 served the session revoked while its link was being killed", round)
		}
		waitTrusted(t, b)
		if st := b.store.Stats(); st.Flushes == flushes {
			t.Errorf("round %d: app2's link came back without flushing its cache", round)
		}
		if find(t, b, key) {
			t.Fatalf("round %d: app2 served the revoked session after reconnecting", round)
		}
	}
}

// Redis restarted (every session gone, scripts and connections lost): the
// replica drops its cache and serves nothing from before.
func TestRedisRestartEmptiesTheCache(t *testing.T) {
	srv := testsvc.StartRedis(t)
	a := startReplica(t, srv.URL, "app1", replicaOptions{})
	key := createSession(t, a, 1)
	cacheIt(t, a, key)
	srv.Stop(t)
	srv.Start(t)
	testkit.Eventually(t, 5*time.Second, "the session gone after Redis restarted", func() error {
		_, found, err := a.store.FindCtx(context.Background(), key)
		if err != nil || found {
			return fmt.Errorf("found %v, err %v", found, err)
		}
		return nil
	})
	waitTrusted(t, a)
}

// FLUSHALL empties every replica's cache at once.
func TestFlushAllEmptiesEveryCache(t *testing.T) {
	srv := testsvc.StartRedis(t)
	a := startReplica(t, srv.URL, "app1", replicaOptions{})
	key := createSession(t, a, 1)
	cacheIt(t, a, key)
	if _, err := srv.Conn(t).Do("FLUSHALL"); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}
	testkit.Eventually(t, time.Second, "the cache flushed", func() error {
		if find(t, a, key) {
			return errors.New("still served")
		}
		return nil
	})
}

// The cache holds no more than its bounds, evicting the least recently
// used, and still answers every read right.
func TestTheCacheStaysWithinItsBounds(t *testing.T) {
	srv := testsvc.StartRedis(t)
	a := startReplica(t, srv.URL, "app1", replicaOptions{maxEntries: 10})
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = createSession(t, a, int64(i+1))
	}
	for round := range 3 {
		for _, k := range keys {
			if !find(t, a, k) {
				t.Fatalf("round %d: session %s not found", round, k)
			}
		}
	}
	st := a.store.Stats()
	if st.Entries > 10 {
		t.Errorf("cache holds %d entries, bound is 10", st.Entries)
	}
	if st.Evictions < 40 {
		t.Errorf("evictions = %d, want ≥ 40", st.Evictions)
	}

	small := startReplica(t, srv.URL, "small", replicaOptions{maxBytes: 2000})
	for _, k := range keys {
		find(t, small, k)
	}
	if st := small.store.Stats(); st.Bytes > 2000 {
		t.Errorf("cache holds %d bytes, bound is 2000", st.Bytes)
	}
}

// A cached session is kept no longer than Redis keeps it, by real time,
// as Redis expires it: a read after its time to live has passed is not
// answered from the cache.
func TestACachedSessionIsKeptNoLongerThanRedisKeepsIt(t *testing.T) {
	srv := testsvc.StartRedis(t)
	a := startReplica(t, srv.URL, "app1", replicaOptions{opts: session.Options{IdleTimeout: 300 * time.Millisecond}})
	key := createSession(t, a, 1)
	cacheIt(t, a, key)
	time.Sleep(300 * time.Millisecond)
	hits := a.store.Stats().Hits
	if find(t, a, key) {
		t.Error("a session past its time to live was found")
	}
	if a.store.Stats().Hits != hits {
		t.Error("the cache answered for a session past its time to live")
	}
}

// A read marked fresh (a check just before a lasting change) goes to Redis
// even when the session is cached.
func TestAFreshReadBypassesTheCache(t *testing.T) {
	srv := testsvc.StartRedis(t)
	a := startReplica(t, srv.URL, "app1", replicaOptions{})
	key := createSession(t, a, 1)
	cacheIt(t, a, key)
	hits := a.store.Stats().Hits
	if _, found, err := a.store.FindCtx(session.FreshRead(context.Background()), key); err != nil || !found {
		t.Fatalf("fresh read: %v, %v", found, err)
	}
	if a.store.Stats().Hits != hits {
		t.Error("a fresh read was answered from the cache")
	}
}
