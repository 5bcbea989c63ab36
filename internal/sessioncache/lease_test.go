package sessioncache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// primaryLease is a primary lease the test grants and ends by hand, with
// terms as redisx numbers them: a new one each time it is granted again
// after it ended.
type primaryLease struct {
	mu    sync.Mutex
	until time.Time
	term  uint64
}

func (l *primaryLease) get() (time.Time, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until, l.term
}

// grant holds the lease for an hour, in a new term if it had ended.
func (l *primaryLease) grant() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !time.Now().Before(l.until) {
		l.term++
	}
	l.until = time.Now().Add(time.Hour)
}

// end ends the lease now.
func (l *primaryLease) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.until = time.Now()
}

// Once the primary lease is lost, the cache stops answering from memory:
// every read sends its GET to Redis, although the replica's own heartbeats
// still go through (a primary cut off from the Sentinels with this replica
// still takes writes). When the lease comes back in a new term, the cache
// is emptied before it answers again: what it held may predate a failover.
func TestTheCacheAnswersOnlyWithinThePrimaryLease(t *testing.T) {
	srv := testsvc.StartRedis(t)
	lease := &primaryLease{}
	lease.grant()
	counted, sent := testsvc.CountingPool(t, srv.URL)
	plain := startReplica(t, srv.URL, "plain", replicaOptions{})
	r := startReplica(t, srv.URL, "leased", replicaOptions{pool: counted, dial: plain.pool.DialContext, primaryLease: lease.get})
	key := createSession(t, plain, 1)
	cacheIt(t, r, key)
	before := sent.Load()
	for range 100 {
		find(t, r, key)
	}
	if got := sent.Load() - before; got != 0 {
		t.Fatalf("100 reads within the lease sent %d Redis commands, want 0", got)
	}

	lease.end()
	heartbeats, hits := r.store.Stats().Heartbeats, r.store.Stats().Hits
	before = sent.Load()
	for i := range 100 {
		if !find(t, r, key) {
			t.Fatalf("read %d without the lease: session not found in Redis", i)
		}
	}
	if got := sent.Load() - before; got < 100 {
		t.Fatalf("100 reads without the primary lease sent %d Redis commands; each must reach Redis", got)
	}
	if st := r.store.Stats(); st.Hits != hits || st.Trusted {
		t.Fatalf("without the primary lease: %d hits (had %d), trusted %v; want no hit, not trusted", st.Hits, hits, st.Trusted)
	}
	testkit.Eventually(t, 2*time.Second, "heartbeats going on without the primary lease", func() error {
		if r.store.Stats().Heartbeats < heartbeats+3 {
			return errors.New("no heartbeat")
		}
		return nil
	})
	if r.link.Trusted() {
		t.Fatal("the link trusts its cache without the primary lease")
	}

	flushes := r.store.Stats().Flushes
	lease.grant()
	waitTrusted(t, r)
	if st := r.store.Stats(); st.Flushes == flushes || st.Entries != 0 {
		t.Fatalf("the lease back in a new term: %d flushes (had %d), %d entries; want the cache emptied first", st.Flushes, flushes, st.Entries)
	}
	cacheIt(t, r, key)
}

// The same with real Sentinels: the replica of Hallpass keeps reaching the
// primary, and its heartbeats keep succeeding, but once every Sentinel is
// cut off (frozen) its cache stops answering within down-after, and no
// read is a hit from then on.
func TestTheCacheStopsAnsweringOnceTheSentinelsAreCutOff(t *testing.T) {
	const downAfter = 1500 * time.Millisecond // deploy/redis/sentinel.conf
	c := testsvc.StartSentinelCluster(t)
	for _, addr := range c.SentinelAddrs {
		sentinelDo(t, addr, "SENTINEL", "SET", c.MasterName, "down-after-milliseconds", downAfter.Milliseconds())
	}
	sp, err := redisx.NewSentinelPool(redisx.SentinelOptions{
		Addrs:       c.SentinelAddrs,
		MasterName:  c.MasterName,
		PoolOptions: redisx.PoolOptions{ConnectTimeout: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	if err := redisx.Ping(context.Background(), sp.Pool()); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, "", "app1", replicaOptions{
		pool:         sp.Pool(),
		primaryLease: sp.PrimaryLeaseTerm,
		store: func(pool *redis.Pool, opts session.Options) *session.RedisStore {
			return session.NewRedisStoreWithReplicaAndLease(pool, sp.ReplicaPool(), sp.PrimaryLease, opts)
		},
	})
	key := createSession(t, r, 1)
	cacheIt(t, r, key)

	cut := time.Now()
	c.FreezeSentinels(t)
	testkit.Eventually(t, downAfter, "the cache distrusted", func() error {
		if r.link.Trusted() {
			return errors.New("still trusted")
		}
		return nil
	})
	t.Logf("cache distrusted %s after the Sentinels were cut off", time.Since(cut).Round(time.Millisecond))
	st := r.store.Stats()
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		r.store.FindCtx(ctx, key) // from the replica, or an error: not from memory
		cancel()
	}
	after := r.store.Stats()
	if after.Hits != st.Hits {
		t.Fatalf("%d reads answered from memory after the cache was distrusted", after.Hits-st.Hits)
	}
	if after.Heartbeats <= st.Heartbeats {
		t.Fatalf("heartbeats stopped (%d, then %d): the primary should still take them", st.Heartbeats, after.Heartbeats)
	}
	if r.link.Trusted() {
		t.Fatal("the cache is trusted again with the Sentinels still cut off")
	}
}

// sentinelDo runs a command on the Sentinel at addr.
func sentinelDo(t *testing.T, addr, cmd string, args ...any) any {
	t.Helper()
	conn, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(time.Second), redis.DialWriteTimeout(time.Second))
	if err != nil {
		t.Fatalf("sentinel %s: %v", addr, err)
	}
	defer conn.Close()
	reply, err := conn.Do(cmd, args...)
	if err != nil {
		t.Fatalf("sentinel %s: %s: %v", addr, cmd, err)
	}
	return reply
}
