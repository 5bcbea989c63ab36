package sessioncache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/rediscluster"
	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/sessioncache"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// replica is one app replica's view of the sessions: its own pool, link
// and caching store over a shared Redis.
type replica struct {
	pool  *redis.Pool
	link  *sessioncache.Link
	store *sessioncache.Store
	redis *session.RedisStore
	// cluster is the replica's cluster client; nil on a single Redis.
	cluster *rediscluster.Cluster
}

// replicaOptions vary a replica; zero values take the defaults.
type replicaOptions struct {
	opts session.Options
	// dial, if set, opens the link's connections instead of the pool's
	// own dial (to put a proxy in the way).
	dial func(ctx context.Context) (redis.Conn, error)
	// pool, if set, is used instead of a fresh pool to url.
	pool       *redis.Pool
	maxEntries int
	maxBytes   int64
	// primaryLease, if set, is the link's primary lease.
	primaryLease func() (time.Time, uint64)
	// store, if set, builds the Redis store over the pool instead of
	// session.NewRedisStore.
	store func(pool *redis.Pool, opts session.Options) *session.RedisStore
}

// startReplica starts a replica on the Redis at url and waits until its
// cache is trusted; everything stops when t ends.
func startReplica(t testing.TB, url, name string, ro replicaOptions) *replica {
	t.Helper()
	pool := ro.pool
	if pool == nil {
		var err error
		pool, err = redisx.NewPool(url, redisx.DefaultPoolOptions())
		if err != nil {
			t.Fatalf("NewPool: %v", err)
		}
		t.Cleanup(func() { pool.Close() })
	}
	dial := ro.dial
	if dial == nil {
		dial = pool.DialContext
	}
	if ro.opts.IdleTimeout == 0 {
		ro.opts.IdleTimeout = time.Hour
	}
	if ro.opts.Lifetime == 0 {
		ro.opts.Lifetime = time.Hour
	}
	link, err := sessioncache.StartLink(sessioncache.LinkOptions{
		Dial:         dial,
		Pool:         pool,
		KeyPrefix:    session.RedisSessionPrefix,
		ReplicaID:    name,
		MaxEntries:   cmpOr(ro.maxEntries, 10000),
		MaxBytes:     cmpOr(ro.maxBytes, 16<<20),
		PrimaryLease: ro.primaryLease,
	})
	if err != nil {
		t.Fatalf("StartLink: %v", err)
	}
	t.Cleanup(func() { link.Close() })
	rs := session.NewRedisStore(pool, ro.opts)
	if ro.store != nil {
		rs = ro.store(pool, ro.opts)
	}
	r := &replica{pool: pool, link: link, redis: rs, store: sessioncache.NewStore(rs, link)}
	waitTrusted(t, r)
	return r
}

// dialNode opens a connection to one node of a Redis Cluster.
type dialNode func(ctx context.Context, addr string) (redis.Conn, error)

// dialClusterNode is the tests' dialNode: straight to the node.
func dialClusterNode(ctx context.Context, addr string) (redis.Conn, error) {
	return redis.DialContext(ctx, "tcp", addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
}

// clusterReplicaOptions vary a replica on a Redis Cluster; zero values
// take the defaults.
type clusterReplicaOptions struct {
	// dial, if set, opens the link's connections to each primary instead
	// of dialClusterNode (to put a proxy in the way of one).
	dial dialNode
	// nodes, if set, is the link's view of the primaries instead of its
	// cluster client's.
	nodes func(c *rediscluster.Cluster) []string
}

// startClusterReplica starts a replica on the Redis Cluster rc, with a
// cluster client of its own, and waits until its cache is trusted.
func startClusterReplica(t testing.TB, rc *testsvc.RedisCluster, name string, ro clusterReplicaOptions) *replica {
	t.Helper()
	c := connectCluster(t, rc)
	dial := ro.dial
	if dial == nil {
		dial = dialClusterNode
	}
	nodes := c.Primaries
	if ro.nodes != nil {
		nodes = func() []string { return ro.nodes(c) }
	}
	link, err := sessioncache.StartLink(sessioncache.LinkOptions{
		Nodes:      nodes,
		DialNode:   dial,
		Pool:       c.Pool(),
		KeyPrefix:  session.RedisSessionPrefix,
		ReplicaID:  name,
		MaxEntries: 10000,
		MaxBytes:   16 << 20,
	})
	if err != nil {
		t.Fatalf("StartLink: %v", err)
	}
	t.Cleanup(func() { link.Close() })
	rs := session.NewRedisClusterStore(c.Pool(), c.PrimaryFor, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour})
	r := &replica{pool: c.Pool(), link: link, redis: rs, store: sessioncache.NewStore(rs, link), cluster: c}
	waitTrusted(t, r)
	return r
}

// connectCluster returns a cluster client of rc's, closed when t ends.
func connectCluster(t testing.TB, rc *testsvc.RedisCluster) *rediscluster.Cluster {
	t.Helper()
	c, err := rediscluster.New(context.Background(), rc.Seeds(), rediscluster.Options{Dial: dialClusterNode})
	if err != nil {
		t.Fatalf("connect to the cluster: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// waitTrusted polls until r's cache is trusted.
func waitTrusted(t testing.TB, r *replica) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, "replica "+r.link.ID()+"'s cache trusted", func() error {
		if !r.link.Trusted() {
			return errors.New("not trusted")
		}
		return nil
	})
}

// createSession stores a new session of userID through r and returns its key.
func createSession(t testing.TB, r *replica, userID int64) string {
	t.Helper()
	key := sessiontest.NewKeyFor(t, userID)
	if _, err := r.store.Create(context.Background(), key, userID, []byte("session of "+key),
		time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return key
}

// cacheIt reads key through r until r answers it from its cache (the
// creation's own invalidation may drop the first fill).
func cacheIt(t testing.TB, r *replica, key string) {
	t.Helper()
	testkit.Eventually(t, 2*time.Second, "the session cached by "+r.link.ID(), func() error {
		hits := r.store.Stats().Hits
		if !find(t, r, key) {
			t.Fatalf("%s did not find session %s", r.link.ID(), key)
		}
		if r.store.Stats().Hits == hits {
			return errors.New("read was not a hit")
		}
		return nil
	})
}

// find reads key through r, failing t on an error.
func find(t testing.TB, r *replica, key string) bool {
	t.Helper()
	_, found, err := r.store.FindCtx(context.Background(), key)
	if err != nil {
		t.Fatalf("FindCtx on %s: %v", r.link.ID(), err)
	}
	return found
}
