package session_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/rediscluster"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// startClusterStore starts a real Redis Cluster of three primaries with a
// replica each, and returns a connection to it for stores to use.
func startClusterStore(t *testing.T) (*testsvc.RedisCluster, *rediscluster.Cluster) {
	t.Helper()
	rc := testsvc.StartRedisCluster(t, 3, 1)
	c, err := rediscluster.New(t.Context(), rc.Seeds(), rediscluster.Options{
		Dial: func(ctx context.Context, addr string) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr,
				redis.DialConnectTimeout(time.Second),
				redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
		},
	})
	if err != nil {
		t.Fatalf("connect to the cluster: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return rc, c
}

func TestRedisClusterStoreContract(t *testing.T) {
	_, c := startClusterStore(t)
	sessiontest.RunStoreContract(t, func(t *testing.T, opts session.Options) session.Store {
		return session.NewRedisClusterStore(c.Pool(), c.PrimaryFor, opts)
	})
}

// clusterLoad signs people in and out of a cluster store from several
// goroutines and keeps what the store acknowledged: a session whose Create
// returned nil must be there at the end unless a Delete of it was sent; one
// whose Delete returned nil must never be found again.
type clusterLoad struct {
	store session.Store
	c     *rediscluster.Cluster

	mu        sync.Mutex
	live      map[string]int64 // acknowledged sign-ins, no sign-out sent
	signedOut map[string]int64 // acknowledged sign-outs
	errs      []error          // what failed, with the primary of its key
	failedOn  map[string]int   // failures per primary
	ops       atomic.Int64
}

// newClusterLoad loads a store over c whose every sign-in and sign-out a
// replica confirms (WAIT 1), as production runs it.
func newClusterLoad(c *rediscluster.Cluster) *clusterLoad {
	store := session.NewRedisClusterStore(c.Pool(), c.PrimaryFor, session.Options{
		IdleTimeout: time.Hour, Lifetime: time.Hour, WaitReplicas: 1, WaitTimeout: time.Second,
	})
	return &clusterLoad{store: store, c: c, live: map[string]int64{}, signedOut: map[string]int64{}, failedOn: map[string]int{}}
}

// run works until ctx ends, with workers goroutines.
func (l *clusterLoad) run(ctx context.Context, t *testing.T, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				l.step(t)
			}
		})
	}
	return &wg
}

// step signs one new user in, reads the session back, and signs half the
// sessions (at random) out again.
func (l *clusterLoad) step(t *testing.T) {
	ctx := context.Background()
	user := sessiontest.NewUserID(t)
	key := sessiontest.NewKeyFor(t, user)
	_, err := l.store.Create(ctx, key, user, []byte("v"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{})
	l.ops.Add(1)
	if err != nil {
		l.failed(key, "create", err)
		return
	}
	l.mu.Lock()
	l.live[key] = user
	l.mu.Unlock()
	if _, found, err := l.store.FindCtx(ctx, key); err != nil || !found {
		l.failed(key, "find", fmt.Errorf("found %v, %w", found, err))
	}
	l.ops.Add(1)
	if rand.IntN(2) == 0 {
		return
	}
	l.mu.Lock()
	delete(l.live, key) // a sign-out sent: either outcome may stand
	l.mu.Unlock()
	err = l.store.DeleteCtx(ctx, key)
	l.ops.Add(1)
	if err != nil {
		l.failed(key, "delete", err)
		return
	}
	l.mu.Lock()
	l.signedOut[key] = user
	l.mu.Unlock()
}

func (l *clusterLoad) failed(key, op string, err error) {
	node := l.c.PrimaryFor(session.RedisSessionPrefix + key)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failedOn[node]++
	if len(l.errs) < 10 {
		l.errs = append(l.errs, fmt.Errorf("%s on %s: %w", op, node, err))
	}
}

// check looks every acknowledged session up: each sign-in is there, each
// sign-out is not and its tombstone says so.
func (l *clusterLoad) check(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	l.mu.Lock()
	defer l.mu.Unlock()
	lost, served := 0, 0
	for key := range l.live {
		if _, found, err := l.store.FindCtx(ctx, key); err != nil {
			t.Fatalf("Find after the load: %v", err)
		} else if !found {
			lost++
		}
	}
	for key := range l.signedOut {
		_, found, err := l.store.FindCtx(ctx, key)
		if err != nil {
			t.Fatalf("Find after the load: %v", err)
		}
		reason, err := l.store.EndReason(ctx, key)
		if err != nil {
			t.Fatalf("EndReason after the load: %v", err)
		}
		if found || reason != session.EndedSignedOut {
			served++
		}
	}
	t.Logf("%d operations; %d acknowledged sign-ins kept, %d acknowledged sign-outs; %d lost, %d signed-out sessions found again; failures per primary %v",
		l.ops.Load(), len(l.live), len(l.signedOut), lost, served, l.failedOn)
	if lost > 0 || served > 0 {
		t.Errorf("%d acknowledged sign-ins lost, %d acknowledged sign-outs undone", lost, served)
	}
	if len(l.live) < 50 || len(l.signedOut) < 50 {
		t.Errorf("too little load to judge: %d sign-ins kept, %d sign-outs", len(l.live), len(l.signedOut))
	}
}

// TestRedisClusterPrimaryKilledUnderLoad kills one of three primaries
// (SIGKILL) while sessions are signed in and out on all of them, with each
// write confirmed by the primary's replica (WAIT 1). The replica takes
// over; the other primaries' shards never fail; no acknowledged sign-in is
// lost and no acknowledged sign-out undone.
func TestRedisClusterPrimaryKilledUnderLoad(t *testing.T) {
	rc, c := startClusterStore(t)
	load := newClusterLoad(c)
	ctx, stop := context.WithCancel(context.Background())
	wg := load.run(ctx, t, 6)
	time.Sleep(time.Second)

	victim := "hp:s:{00}"
	dead := rc.KillPrimaryOf(t, victim)
	killedAt := time.Now()
	promoted := rc.WaitForPromotion(t, dead)
	t.Logf("killed %s; %s took its slots after %v", dead, promoted, time.Since(killedAt).Round(10*time.Millisecond))
	// The routing layer learns the new primary by itself.
	deadline := time.Now().Add(10 * time.Second)
	for c.PrimaryFor(victim) != promoted && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.PrimaryFor(victim); got != promoted {
		t.Errorf("10 s after the promotion the slot map still names %s for the dead primary's slots, want %s", got, promoted)
	}
	time.Sleep(time.Second) // load on the new topology
	stop()
	wg.Wait()

	load.mu.Lock()
	for node, n := range load.failedOn {
		if node != dead && node != promoted && n > 0 {
			t.Errorf("%d operations failed on %s, a primary nobody killed: %v", n, node, load.errs)
		}
	}
	load.mu.Unlock()
	load.check(t)
}

// TestRedisClusterReshardUnderLoad moves a third of the slots from one
// primary to another with redis-cli --cluster reshard while sessions are
// signed in, read and signed out on every shard: every operation succeeds
// (the layer follows ASK and MOVED, and retries TRYAGAIN), and every
// acknowledged change holds afterwards.
func TestRedisClusterReshardUnderLoad(t *testing.T) {
	rc, c := startClusterStore(t)
	load := newClusterLoad(c)
	ctx, stop := context.WithCancel(context.Background())
	wg := load.run(ctx, t, 6)
	time.Sleep(500 * time.Millisecond)

	primaries := rc.Primaries(t)
	from, to := primaries[0], primaries[1]
	before := ownedTags(c, from)
	started := time.Now()
	rc.Reshard(t, from, to, 2000)
	t.Logf("moved 2000 slots from %s to %s in %v under load", from, to, time.Since(started).Round(10*time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	moved := before - ownedTags(c, from)
	if moved == 0 {
		t.Fatalf("no shard tag changed hands (%s held %d before): the reshard moved no session", from, before)
	}
	t.Logf("%d of the %d shard tags %s held moved", moved, before, from)

	load.mu.Lock()
	if len(load.errs) > 0 {
		t.Errorf("operations failed during the reshard (per primary %v): %v", load.failedOn, errors.Join(load.errs...))
	}
	load.mu.Unlock()
	load.check(t)
}

// ownedTags counts the shard tags whose slot node holds.
func ownedTags(c *rediscluster.Cluster, node string) int {
	n := 0
	for i := range session.ShardTags {
		if c.PrimaryFor(fmt.Sprintf("{%02x}", i)) == node {
			n++
		}
	}
	return n
}

// TestRedisClusterSignInReplacingAnotherShardsSessionRacesARevocation is
// the attack on the two-step path: a browser signed in as alice signs in as
// bob (whose shard differs, so alice's session is ended in a second step)
// while an admin revokes alice's sessions. Whichever wins, a revocation
// that landed first is never undone: if the sign-in succeeded it ended
// alice's session itself (its tombstone says signed out); if it was refused,
// bob's new session does not exist.
func TestRedisClusterSignInReplacingAnotherShardsSessionRacesARevocation(t *testing.T) {
	_, c := startClusterStore(t)
	store := session.NewRedisClusterStore(c.Pool(), c.PrimaryFor, session.Options{
		IdleTimeout: time.Hour, Lifetime: time.Hour, WaitReplicas: 1, WaitTimeout: time.Second,
	})
	ctx := context.Background()
	expiry := time.Now().Add(time.Hour)
	won := map[string]int{}
	for range 60 {
		alice, bob := sessiontest.NewUserID(t), sessiontest.NewUserID(t)
		for session.UserTag(bob) == session.UserTag(alice) {
			bob = sessiontest.NewUserID(t)
		}
		old, signIn := sessiontest.NewKeyFor(t, alice), sessiontest.NewKeyFor(t, bob)
		if _, err := store.Create(ctx, old, alice, []byte("alice"), expiry, session.Limit{}, session.Origin{}); err != nil {
			t.Fatal(err)
		}
		var createErr, revokeErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			_, createErr = store.Create(ctx, signIn, bob, []byte("bob"), expiry, session.Limit{}, session.Origin{Replaces: old})
		})
		wg.Go(func() { _, revokeErr = store.RevokeUser(ctx, alice, "", session.EndedByAdmin) })
		wg.Wait()
		if revokeErr != nil {
			t.Fatalf("RevokeUser: %v", revokeErr)
		}
		reason, err := store.EndReason(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		_, bobIn, err := store.FindCtx(ctx, signIn)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case createErr == nil:
			won["sign-in"]++
			if reason != session.EndedSignedOut || !bobIn {
				t.Fatalf("the sign-in succeeded, but alice's session ended %q and bob's is there: %v", reason, bobIn)
			}
		case errors.Is(createErr, session.ErrRevoked):
			won["revocation"]++
			if reason != session.EndedByAdmin || bobIn {
				t.Fatalf("the sign-in was refused, but alice's session ended %q and bob's is there: %v", reason, bobIn)
			}
		default:
			t.Fatalf("Create: %v", createErr)
		}
	}
	t.Logf("60 races: %v", won)
}
