package sessioncache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/rediscluster"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/sessioncache"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// The guarantee on a Redis Cluster: sessions on every primary, each cached
// by another replica, each revoked in every way; once the revocation has
// returned the other replica refuses the session, and it returned because
// that replica confirmed, not because a lease ran out.
func TestOnAClusterRevokedOnOneReplicaIsNeverServedByAnother(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	a := startClusterReplica(t, rc, "app1", clusterReplicaOptions{})
	b := startClusterReplica(t, rc, "app2", clusterReplicaOptions{})
	primaries := a.cluster.Primaries()
	if len(primaries) != 3 {
		t.Fatalf("primaries %v, want 3", primaries)
	}
	const trials = 3 * 6 * 6 // every primary × every way, six times
	var lapsed uint64
	for i := range trials {
		primary := primaries[i%len(primaries)]
		how := revocations[(i/len(primaries))%len(revocations)]
		userID := userOn(t, a.cluster, primary)
		key := createSession(t, a, userID)
		cacheIt(t, b, key)
		before := a.store.Stats().FencesLapsed
		how.revoke(t, a, userID, key)
		lapsed += a.store.Stats().FencesLapsed - before
		for _, r := range []*replica{b, a} {
			if find(t, r, key) {
				t.Fatalf("trial %d (%s, on %s): %s served the session after the revocation returned", i, how.name, primary, r.link.ID())
			}
		}
	}
	t.Logf("%d revocations, %d waited out a lease", trials, lapsed)
	if lapsed > 1 {
		t.Errorf("%d of %d revocations waited out the lease; healthy replicas should confirm every primary's fence", lapsed, trials)
	}
}

// A session deleted by some other client (not a replica of ours, so no
// fence) leaves every replica's cache within milliseconds, whichever
// primary holds it: each primary's invalidation reaches the link's
// connection to that primary.
func TestOnAClusterEveryPrimarysInvalidationsReachTheCache(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	a := startClusterReplica(t, rc, "app1", clusterReplicaOptions{})
	other := connectCluster(t, rc)
	for round := range 3 {
		for _, primary := range a.cluster.Primaries() {
			key := createSession(t, a, userOn(t, a.cluster, primary))
			cacheIt(t, a, key)
			invalidations := a.store.Stats().Invalidations
			deleted := time.Now()
			conn := other.Pool().Get()
			n, err := redis.Int(conn.Do("DEL", session.RedisSessionPrefix+key))
			conn.Close()
			if err != nil || n != 1 {
				t.Fatalf("DEL = %d, %v", n, err)
			}
			testkit.Eventually(t, 500*time.Millisecond, "the session dropped from the cache", func() error {
				if a.store.Stats().Invalidations == invalidations {
					return errors.New("no invalidation yet")
				}
				return nil
			})
			took := time.Since(deleted)
			if find(t, a, key) {
				t.Fatalf("round %d, %s: the session deleted there was served after its invalidation", round, primary)
			}
			t.Logf("round %d, %s: invalidation applied %v after the DEL", round, primary, took.Round(10*time.Microsecond))
		}
	}
}

// A process without a cache (the command line) fences on every primary
// too: it hears no confirmations, so it waits out the lease while a
// replica is caching, and then that replica no longer serves the session.
func TestOnAClusterARevocationWithoutACacheWaitsOutTheLease(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	b := startClusterReplica(t, rc, "app2", clusterReplicaOptions{})
	c := connectCluster(t, rc)
	cli := sessioncache.NewAwaitingClusterStore(
		session.NewRedisClusterStore(c.Pool(), c.PrimaryFor, session.Options{IdleTimeout: time.Hour, Lifetime: time.Hour}),
		c.Pool(), c.Primaries, dialClusterNode)
	for _, primary := range c.Primaries() {
		userID := userOn(t, c, primary)
		key := createSession(t, b, userID)
		cacheIt(t, b, key)
		start := time.Now()
		if n, err := cli.RevokeUser(context.Background(), userID, "", session.EndedByAdmin); err != nil || n != 1 {
			t.Fatalf("RevokeUser = %d, %v; want 1", n, err)
		}
		if took := time.Since(start); took < sessioncache.Lease-10*time.Millisecond {
			t.Errorf("on %s the revocation took %v; with a replica caching it must wait out the lease (%v)", primary, took, sessioncache.Lease)
		}
		if find(t, b, key) {
			t.Fatalf("on %s: app2 served the session the command line revoked", primary)
		}
	}
}

// CLIENT KILL of the replicas' invalidation connections on one primary:
// the cache is flushed and untrusted until that connection is back, which
// it is by itself; a revocation on that primary meanwhile is never served.
func TestOnAClusterAKilledNodeLinkFlushesAndRecoversByItself(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	a := startClusterReplica(t, rc, "app1", clusterReplicaOptions{})
	b := startClusterReplica(t, rc, "app2", clusterReplicaOptions{})
	for round, primary := range append(a.cluster.Primaries(), a.cluster.Primaries()...) {
		userID := userOn(t, a.cluster, primary)
		key := createSession(t, a, userID)
		cacheIt(t, b, key)
		flushes := b.store.Stats().Flushes
		if _, err := rc.Conn(t, primary).Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
			t.Fatalf("CLIENT KILL on %s: %v", primary, err)
		}
		testkit.Eventually(t, time.Second, "app2's cache flushed", func() error {
			if b.store.Stats().Flushes == flushes {
				return errors.New("not flushed")
			}
			return nil
		})
		revocations[round%len(revocations)].revoke(t, a, userID, key)
		if find(t, b, key) {
			t.Fatalf("round %d (%s): app2 served the session revoked while its link there was being killed", round, primary)
		}
		waitTrusted(t, b)
		if find(t, b, key) {
			t.Fatalf("round %d (%s): app2 served the revoked session after reconnecting", round, primary)
		}
	}
}

// One primary's invalidation connection silently stalls, while the
// replica's other connections to it (heartbeats, confirmations) work: the
// whole cache is distrusted within the lease, although the stalled
// primary's heartbeats are still published and their copies come back
// through the other primaries, and a revocation on that primary waits out
// the lease rather than taking a confirmation from such a copy.
func TestOnAClusterARevocationWaitsOutTheLeaseOfAReplicaCutOffFromOnePrimary(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	a := startClusterReplica(t, rc, "app1", clusterReplicaOptions{})
	stalled := a.cluster.Primaries()[1]
	proxy := startStallProxy(t, stalled)
	// The link dials a primary's invalidation connection first: it
	// heartbeats only once every one is subscribed.
	var proxied sync.Once
	b := startClusterReplica(t, rc, "app2", clusterReplicaOptions{dial: func(ctx context.Context, addr string) (redis.Conn, error) {
		through := addr
		if addr == stalled {
			proxied.Do(func() { through = proxy.addr })
		}
		return dialClusterNode(ctx, through)
	}})
	userID := userOn(t, a.cluster, stalled)
	key := createSession(t, a, userID)
	cacheIt(t, b, key)
	elsewhere := createSession(t, a, userOn(t, a.cluster, a.cluster.Primaries()[0]))
	cacheIt(t, b, elsewhere)

	proxy.Stall()
	start := time.Now()
	revocations[1].revoke(t, a, userID, key)
	took := time.Since(start)
	if find(t, b, key) {
		t.Fatal("app2, cut off from one primary's invalidations, served a session revoked there")
	}
	if st := a.store.Stats(); st.FencesLapsed != 1 {
		t.Errorf("fences lapsed = %d, want 1 (app2 could not confirm)", st.FencesLapsed)
	}
	if took < sessioncache.Lease-10*time.Millisecond || took > sessioncache.Lease+time.Second {
		t.Errorf("the revocation took %v; it should wait out about one lease (%v) for app2", took, sessioncache.Lease)
	}
	if b.link.Trusted() {
		t.Error("app2 trusts its cache with one primary's link stalled past the lease")
	}
	hits := b.store.Stats().Hits
	find(t, b, elsewhere)
	if b.store.Stats().Hits != hits {
		t.Error("app2 answered from its cache, for another primary's session, with one primary's link stalled")
	}
	proxy.Resume()
	waitTrusted(t, b)
	if find(t, b, key) {
		t.Fatal("app2 served the revoked session once its link came back")
	}
}

// A replica whose view of the primaries lacks one (the cluster grew, or a
// slot moved to a new primary, and its client has not seen it yet) may
// have cached a session from there, unheard: the copy of a revocation's
// fence naming that primary, which reaches it through the others, makes
// it drop its cache before the revocation returns.
func TestOnAClusterAReplicaBehindOnThePrimariesDropsItsCacheOnAFenceFromAnUnknownOne(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	a := startClusterReplica(t, rc, "app1", clusterReplicaOptions{})
	unknown := a.cluster.Primaries()[2]
	b := startClusterReplica(t, rc, "app2", clusterReplicaOptions{nodes: func(c *rediscluster.Cluster) []string {
		return slices.DeleteFunc(c.Primaries(), func(p string) bool { return p == unknown })
	}})
	for i := range 6 {
		userID := userOn(t, a.cluster, unknown)
		key := createSession(t, a, userID)
		cacheIt(t, b, key)
		revocations[i%len(revocations)].revoke(t, a, userID, key)
		if find(t, b, key) {
			t.Fatalf("trial %d: app2, not following %s, served a session revoked there", i, unknown)
		}
	}
}

// Every message on the events channel reaches each replica's Listener
// once, whichever primary it was published on, although every primary's
// subscribers get a copy.
func TestOnAClusterEachEventIsDeliveredOnce(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 0)
	a := startClusterReplica(t, rc, "app1", clusterReplicaOptions{})
	b := startClusterReplica(t, rc, "app2", clusterReplicaOptions{})
	heard := &eventCounter{}
	b.link.SetListener(heard)
	var sent []string
	for i := range 20 {
		p := "via-link-" + strconv.Itoa(i)
		if err := a.link.Publish(context.Background(), []byte(p)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		sent = append(sent, p)
	}
	for _, primary := range a.cluster.Primaries() {
		conn := rc.Conn(t, primary)
		for i := range 5 {
			p := fmt.Sprintf("on-%s-%d", primary, i)
			if _, err := conn.Do("PUBLISH", sessioncache.EventsChannel, p); err != nil {
				t.Fatalf("PUBLISH on %s: %v", primary, err)
			}
			sent = append(sent, p)
		}
	}
	// Each primary's copies reach the carrier in the order published, so
	// once a last message from each has arrived, any duplicate of the
	// others would have too.
	for _, primary := range a.cluster.Primaries() {
		last := "last-on-" + primary
		if _, err := rc.Conn(t, primary).Do("PUBLISH", sessioncache.EventsChannel, last); err != nil {
			t.Fatalf("PUBLISH on %s: %v", primary, err)
		}
		sent = append(sent, last)
	}
	testkit.Eventually(t, 2*time.Second, "every event delivered", func() error {
		for _, p := range sent {
			if heard.count(p) == 0 {
				return fmt.Errorf("%q not delivered", p)
			}
		}
		return nil
	})
	for _, p := range sent {
		if n := heard.count(p); n != 1 {
			t.Errorf("%q delivered %d times, want once", p, n)
		}
	}
}

// When a primary dies and its replica takes over, the link drops the dead
// primary's connection, connects to the new one and flushes; revocations
// on the new primary are then confirmed, and never served.
func TestOnAClusterTheLinkFollowsAFailover(t *testing.T) {
	rc := testsvc.StartRedisCluster(t, 3, 1)
	a := startClusterReplica(t, rc, "app1", clusterReplicaOptions{})
	b := startClusterReplica(t, rc, "app2", clusterReplicaOptions{})
	victim := a.cluster.Primaries()[0]
	userID := userOn(t, a.cluster, victim)
	key := createSession(t, a, userID)
	cacheIt(t, b, key)
	flushes := b.store.Stats().Flushes

	dead := rc.KillPrimaryOf(t, session.RedisSessionPrefix+key)
	testkit.Eventually(t, 2*time.Second, "app2's cache distrusted", func() error {
		if b.link.Trusted() {
			return errors.New("still trusted")
		}
		return nil
	})
	promoted := rc.WaitForPromotion(t, dead)
	for _, r := range []*replica{a, b} {
		testkit.Eventually(t, 15*time.Second, r.link.ID()+" following "+promoted, func() error {
			if err := r.cluster.Refresh(context.Background()); err != nil {
				return err
			}
			if r.cluster.PrimaryFor(session.RedisSessionPrefix+key) != promoted {
				return errors.New("slot map not updated")
			}
			return nil
		})
		waitTrusted(t, r)
	}
	if st := b.store.Stats(); st.Flushes == flushes {
		t.Errorf("app2 trusted again after the failover without flushing its cache (%d flushes, had %d)", st.Flushes, flushes)
	}
	for i := range 12 {
		userID := userOn(t, a.cluster, promoted)
		key := createSession(t, a, userID)
		cacheIt(t, b, key)
		before := a.store.Stats().FencesLapsed
		revocations[i%len(revocations)].revoke(t, a, userID, key)
		if find(t, b, key) {
			t.Fatalf("trial %d: app2 served a session revoked on the promoted primary", i)
		}
		if a.store.Stats().FencesLapsed != before {
			t.Errorf("trial %d: the revocation on the promoted primary waited out the lease", i)
		}
	}
}

// userOn returns a fresh user whose sessions live on primary.
func userOn(t testing.TB, c *rediscluster.Cluster, primary string) int64 {
	t.Helper()
	for range 10000 {
		id := sessiontest.NewUserID(t)
		if c.PrimaryFor(session.RedisSessionPrefix+sessiontest.NewKeyFor(t, id)) == primary {
			return id
		}
	}
	t.Fatalf("no user found whose sessions live on %s", primary)
	return 0
}

// eventCounter is a Listener counting each event payload it is given.
type eventCounter struct {
	mu    sync.Mutex
	heard map[string]int
}

func (e *eventCounter) Changed([]string) {}
func (e *eventCounter) Resync()          {}
func (e *eventCounter) Delivered(payload []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.heard == nil {
		e.heard = make(map[string]int)
	}
	e.heard[string(payload)]++
}

func (e *eventCounter) count(payload string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.heard[payload]
}
