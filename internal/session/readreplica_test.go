package session_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// replicated is a Redis primary with one replica in sync, and a store over
// both that waits for the replica after sign-ins and revocations, as
// production does (HALLPASS_REDIS_WAIT_REPLICAS=1).
type replicated struct {
	primary, replica *testsvc.RedisServer
	store            *session.RedisStore
}

func startReplicated(t *testing.T, waitReplicas int) *replicated {
	t.Helper()
	primary := testsvc.StartRedis(t)
	replica := testsvc.StartRedisReplica(t, primary)
	opts := session.StoreOptions(30*time.Minute, 12*time.Hour, nil)
	opts.WaitReplicas, opts.WaitTimeout = waitReplicas, 500*time.Millisecond
	return &replicated{
		primary: primary,
		replica: replica,
		store:   session.NewRedisStoreWithReplica(newRedisPool(t, primary.URL), newRedisPool(t, replica.URL), opts),
	}
}

func TestRedisStoreWithAReplicaContract(t *testing.T) {
	r := startReplicated(t, 0)
	pool, replica := newRedisPool(t, r.primary.URL), newRedisPool(t, r.replica.URL)
	sessiontest.RunStoreContract(t, func(t *testing.T, opts session.Options) session.Store {
		return session.NewRedisStoreWithReplica(pool, replica, opts)
	})
}

// send makes a request with the session cookie of token ("" for none) and
// returns the status and body, whatever the status.
func send(t *testing.T, s *signInServer, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: s.m.CookieName(), Value: token})
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// TestSignedInPagesAreReadFromTheReplicaWhileThePrimaryIsDead kills the
// primary (SIGKILL, no failover: there are no Sentinels here) and keeps
// browsing: signed-in pages are served from the replica, a session whose
// revocation was acknowledged before the crash stays signed out, and every
// write is refused with ErrNoPrimary rather than made anywhere.
func TestSignedInPagesAreReadFromTheReplicaWhileThePrimaryIsDead(t *testing.T) {
	r := startReplicated(t, 1)
	m := session.NewManager(session.ManagerOptions{Store: r.store, IdleTimeout: 30 * time.Minute, Lifetime: 12 * time.Hour})
	s := newSignInServer(t, m)
	alice := s.login(t, 1, "")
	bob := s.login(t, 2, "")
	ctx := t.Context()
	// Acknowledged: the revocation returned, so the replica has it.
	if n, err := r.store.RevokeUser(ctx, 2, "", session.EndedByAdmin); err != nil || n != 1 {
		t.Fatalf("RevokeUser(bob) = %d, %v", n, err)
	}
	replicaKeys, err := redis.Int(r.replica.Conn(t).Do("DBSIZE"))
	if err != nil {
		t.Fatal(err)
	}

	r.primary.Kill(t)
	start := time.Now()
	for i := range 20 {
		if status, who := send(t, s, http.MethodGet, "/whoami", alice); status != http.StatusOK || who != "user1" {
			t.Fatalf("page view %d with the primary dead: %d %q, want 200 signed in as user1", i, status, who)
		}
	}
	t.Logf("20 signed-in page views in %s with the primary dead", time.Since(start).Round(time.Millisecond))
	if status, who := send(t, s, http.MethodGet, "/whoami", bob); status != http.StatusOK || who != "" {
		t.Fatalf("revoked session read from the replica: %d %q, want 200 and signed out", status, who)
	}
	if reason, err := r.store.EndReason(ctx, session.StoreKey(bob)); err != nil || reason != session.EndedByAdmin {
		t.Fatalf("EndReason(bob) from the replica = %q, %v; want %q", reason, err, session.EndedByAdmin)
	}
	if _, ttl, found, err := r.store.FindExpiring(ctx, session.StoreKey(alice)); err != nil || !found || ttl != 0 {
		t.Fatalf("FindExpiring from the replica = found %v, ttl %s, %v; want found with ttl 0 (cache it nowhere)", found, ttl, err)
	}
	if err := r.store.Ping(ctx); err != nil {
		t.Fatalf("Ping with the replica answering reads: %v", err)
	}

	// Writes: refused, nothing written.
	if status, body := send(t, s, http.MethodPost, "/login?uid=3", ""); status != http.StatusServiceUnavailable {
		t.Fatalf("sign-in with the primary dead: %d %q, want 503", status, body)
	}
	if status, body := send(t, s, http.MethodPost, "/logout", alice); status != http.StatusServiceUnavailable {
		t.Fatalf("sign-out with the primary dead: %d %q, want 503", status, body)
	}
	expiry := time.Now().Add(time.Hour)
	writes := map[string]func() error{
		"Create": func() error {
			_, err := r.store.Create(ctx, sessiontest.NewKeyFor(t, 3), 3, []byte("x"), expiry, session.Limit{}, session.Origin{})
			return err
		},
		"Commit": func() error { return r.store.CommitCtx(ctx, session.StoreKey(alice), []byte("x"), expiry) },
		"Delete": func() error { return r.store.DeleteCtx(ctx, session.StoreKey(alice)) },
		"Revoke": func() error {
			_, err := r.store.Revoke(ctx, 1, []string{session.StoreKey(alice)}, session.EndedByAdmin)
			return err
		},
		"RevokeUser":  func() error { _, err := r.store.RevokeUser(ctx, 1, "", session.EndedByAdmin); return err },
		"RevokeUsers": func() error { _, err := r.store.RevokeUsers(ctx, []int64{1}, "", session.EndedEveryone); return err },
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, session.ErrNoPrimary) {
			t.Errorf("%s with the primary dead: %v, want ErrNoPrimary", name, err)
		}
	}
	if n, err := redis.Int(r.replica.Conn(t).Do("DBSIZE")); err != nil || n != replicaKeys {
		t.Errorf("replica holds %d keys after the refused writes, %v; want %d as before", n, err, replicaKeys)
	}
	if status, who := send(t, s, http.MethodGet, "/whoami", alice); status != http.StatusOK || who != "user1" {
		t.Fatalf("page view after the refused sign-out: %d %q, want 200 signed in as user1", status, who)
	}
	// A read for a write that follows is not answered by the replica.
	if _, _, err := r.store.FindCtx(session.FreshRead(ctx), session.StoreKey(alice)); err == nil {
		t.Error("a fresh read with the primary dead succeeded; it must come from the primary")
	}
}

// TestAHungPrimaryCostsAReadHalfASecond freezes the primary (SIGSTOP: its
// connections stay open, nothing answers): the first read waits out the
// primary's bound and is answered by the replica within the request's
// default deadline, and the reads after it go to the replica at once.
func TestAHungPrimaryCostsAReadHalfASecond(t *testing.T) {
	r := startReplicated(t, 1)
	ctx := context.Background()
	key := sessiontest.NewKeyFor(t, 1)
	if _, err := r.store.Create(ctx, key, 1, []byte("alice"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
		t.Fatal(err)
	}
	r.primary.Pause(t)
	t.Cleanup(func() { r.primary.Resume(t) })

	start := time.Now()
	if b, found, err := r.store.FindCtx(ctx, key); err != nil || !found || string(b) != "alice" {
		t.Fatalf("Find with the primary frozen = %q, %v, %v; want alice", b, found, err)
	}
	first := time.Since(start)
	start = time.Now()
	for range 10 {
		if _, found, err := r.store.FindCtx(ctx, key); err != nil || !found {
			t.Fatalf("Find with the primary frozen = %v, %v", found, err)
		}
	}
	next := time.Since(start) / 10
	t.Logf("first read %s, then %s each", first.Round(time.Millisecond), next.Round(time.Microsecond))
	if first > 1500*time.Millisecond {
		t.Errorf("first read with the primary frozen took %s, want about 500 ms", first)
	}
	if next > 100*time.Millisecond {
		t.Errorf("reads after it took %s each: the frozen primary is still being asked", next)
	}
}

// TestOnlyAnAcknowledgedRevocationIsSureToBeOnTheReplica is why a replica
// read cannot serve a revoked session: the revocation is acknowledged only
// once the replica has it (WAIT 1). The replica is cut off from the primary
// (told to follow an address where nothing listens: it keeps its data, as a
// replica whose link broke does) before the revocation. The control store,
// which does not wait, acknowledges the revocation anyway, and once the
// primary dies the replica serves the revoked session; the waiting store
// refuses to acknowledge it instead (ErrNotReplicated).
func TestOnlyAnAcknowledgedRevocationIsSureToBeOnTheReplica(t *testing.T) {
	for _, tc := range []struct {
		name         string
		waitReplicas int
	}{{"waiting for the replica", 1}, {"control: not waiting", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			r := startReplicated(t, tc.waitReplicas)
			ctx := t.Context()
			key := sessiontest.NewKeyFor(t, 1)
			if _, err := r.store.Create(ctx, key, 1, []byte("alice"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
				t.Fatal(err)
			}
			if err := waitForKey(r.replica, session.RedisSessionPrefix+key); err != nil {
				t.Fatal(err)
			}
			if _, err := r.replica.Conn(t).Do("REPLICAOF", "127.0.0.1", testsvc.FreePort(t)); err != nil {
				t.Fatal(err)
			}
			_, err := r.store.RevokeUser(ctx, 1, "", session.EndedByAdmin)
			acknowledged := err == nil
			r.primary.Kill(t)

			_, found, ferr := r.store.FindCtx(ctx, key)
			if ferr != nil {
				t.Fatalf("Find from the replica: %v", ferr)
			}
			switch {
			case tc.waitReplicas > 0 && acknowledged:
				t.Fatal("the revocation was acknowledged while the replica was cut off")
			case tc.waitReplicas > 0 && !errors.Is(err, session.ErrNotReplicated):
				t.Fatalf("RevokeUser with the replica cut off: %v, want ErrNotReplicated", err)
			case tc.waitReplicas == 0 && !(acknowledged && found):
				t.Fatalf("control: acknowledged %v (%v), served from the replica afterwards %v; want both", acknowledged, err, found)
			}
		})
	}
}

// waitForKey polls srv until key exists there.
func waitForKey(srv *testsvc.RedisServer, key string) error {
	c, err := redis.Dial("tcp", srv.Addr, redis.DialReadTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	return testkit.PollUntil(5*time.Second, func() error {
		if n, err := redis.Int(c.Do("EXISTS", key)); err != nil || n != 1 {
			return fmt.Errorf("key %s not on the replica: %d, %v", strings.TrimPrefix(key, session.RedisSessionPrefix), n, err)
		}
		return nil
	})
}

// leaseSwitch is a primary lease the test grants and ends by hand.
type leaseSwitch struct{ until atomic.Pointer[time.Time] }

func newLeaseSwitch() *leaseSwitch {
	l := &leaseSwitch{}
	l.endIn(0)
	return l
}

// endIn makes the lease end d from now (at once for d ≤ 0).
func (l *leaseSwitch) endIn(d time.Duration) {
	until := time.Time{}
	if d > 0 {
		until = time.Now().Add(d)
	}
	l.until.Store(&until)
}

func (l *leaseSwitch) lease() time.Time { return *l.until.Load() }

// removeFromReplica deletes key on the replica only, as if its session had
// been revoked on another primary: the replica stands for the server a
// failover promotes, which has the revocation while the old primary does
// not.
func removeFromReplica(t *testing.T, replica *testsvc.RedisServer, key string) {
	t.Helper()
	c := replica.Conn(t)
	for _, cmd := range [][]any{
		{"CONFIG", "SET", "replica-read-only", "no"},
		{"DEL", session.RedisSessionPrefix + key},
		{"CONFIG", "SET", "replica-read-only", "yes"},
	} {
		if _, err := c.Do(cmd[0].(string), cmd[1:]...); err != nil {
			t.Fatalf("replica %s: %v: %v", replica.Addr, cmd, err)
		}
	}
}

// A store whose primary lease is not held never uses the primary's answer:
// it reads the replica, and fails when the replica cannot answer either.
// The session is still on the primary and gone from the replica, so every
// answer says where it came from.
func TestAStoreWithoutThePrimaryLeaseNeverReadsThePrimary(t *testing.T) {
	primary := testsvc.StartRedis(t)
	replica := testsvc.StartRedisReplica(t, primary)
	opts := session.StoreOptions(30*time.Minute, 12*time.Hour, nil)
	opts.WaitReplicas, opts.WaitTimeout = 1, time.Second
	lease := newLeaseSwitch()
	store := session.NewRedisStoreWithReplicaAndLease(newRedisPool(t, primary.URL), newRedisPool(t, replica.URL), lease.lease, opts)
	ctx := t.Context()
	key := sessiontest.NewKeyFor(t, 1)
	if _, err := store.Create(ctx, key, 1, []byte("alice"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
		t.Fatal(err)
	}
	removeFromReplica(t, replica, key)

	lease.endIn(time.Hour)
	if _, found, err := store.FindCtx(ctx, key); err != nil || !found {
		t.Fatalf("Find within the lease = %v, %v; want the primary's session", found, err)
	}
	if _, ttl, found, err := store.FindExpiring(ctx, key); err != nil || !found || ttl <= 0 {
		t.Fatalf("FindExpiring within the lease = %s, %v, %v; want the primary's session and its time to live", ttl, found, err)
	}

	lease.endIn(0)
	for i := range 20 {
		if _, found, err := store.FindCtx(ctx, key); err != nil || found {
			t.Fatalf("Find %d without the lease = %v, %v; want the replica's answer: no session", i, found, err)
		}
		if _, _, found, err := store.FindExpiring(ctx, key); err != nil || found {
			t.Fatalf("FindExpiring %d without the lease = %v, %v; want the replica's answer: no session", i, found, err)
		}
	}
	if err := store.Ping(ctx); err != nil {
		t.Fatalf("Ping without the lease, the replica up: %v", err)
	}

	// Without the replica as well, nothing is left to answer.
	replica.Pause(t)
	t.Cleanup(func() { replica.Resume(t) })
	for i := range 3 {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, found, err := store.FindCtx(rctx, key)
		cancel()
		if err == nil || found {
			t.Fatalf("Find %d without the lease or the replica = %v, %v; want an error", i, found, err)
		}
	}
	if err := store.Ping(ctx); err == nil {
		t.Fatal("Ping without the lease or the replica succeeded")
	}

	// FreshRead stays on the primary: the write it guards checks itself.
	replica.Resume(t)
	if _, found, err := store.FindCtx(session.FreshRead(ctx), key); err != nil || !found {
		t.Fatalf("a fresh read without the lease = %v, %v; want the primary's session", found, err)
	}
}

// An answer the primary gives after the lease (taken before asking) has
// ended is not used, even though it came: a failover may have completed in
// between. The primary is frozen across the end of the lease and thawed
// just after, within the primary's 500 ms bound.
func TestAPrimaryAnswerAfterTheLeaseEndedIsNotUsed(t *testing.T) {
	primary := testsvc.StartRedis(t)
	replica := testsvc.StartRedisReplica(t, primary)
	opts := session.StoreOptions(30*time.Minute, 12*time.Hour, nil)
	opts.WaitReplicas, opts.WaitTimeout = 1, time.Second
	lease := newLeaseSwitch()
	store := session.NewRedisStoreWithReplicaAndLease(newRedisPool(t, primary.URL), newRedisPool(t, replica.URL), lease.lease, opts)
	ctx := t.Context()
	key := sessiontest.NewKeyFor(t, 1)
	lease.endIn(time.Hour)
	if _, err := store.Create(ctx, key, 1, []byte("alice"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
		t.Fatal(err)
	}
	removeFromReplica(t, replica, key)

	// The scenario needs the primary's answer to come back within its
	// bound; on a machine too busy for that, try again.
	for attempt := 1; ; attempt++ {
		if _, found, err := store.FindCtx(ctx, key); err != nil || !found {
			t.Fatalf("Find within the lease = %v, %v; want the primary's session", found, err)
		}
		const leaseLeft = 100 * time.Millisecond
		lease.endIn(leaseLeft)
		primary.Pause(t)
		type result struct {
			found bool
			err   error
			took  time.Duration
		}
		done := make(chan result, 1)
		go func() {
			start := time.Now()
			_, found, err := store.FindCtx(ctx, key)
			done <- result{found, err, time.Since(start)}
		}()
		testkit.Eventually(t, time.Second, "the lease to end", func() error {
			if time.Now().Before(lease.lease()) {
				return errors.New("still held")
			}
			return nil
		})
		time.Sleep(20 * time.Millisecond) // well past the end, before the primary's bound
		primary.Resume(t)
		r := <-done
		if r.err != nil || r.found {
			t.Fatalf("Find whose primary answer came after the lease = %v, %v; want the replica's answer: no session", r.found, r.err)
		}
		if r.took < 400*time.Millisecond {
			t.Logf("attempt %d: the primary answered after the lease ended; the read took %s and used the replica", attempt, r.took.Round(time.Millisecond))
			return
		}
		if attempt == 5 {
			t.Fatalf("the primary never answered within its bound in 5 attempts (last read took %s)", r.took)
		}
		lease.endIn(time.Hour)
	}
}

// leasedStoreWithASession starts a primary, a replica and three Sentinels,
// and returns them with a Sentinel pool, a store that reads under the primary lease (waiting
// for one replica, as deployed) and the key of a session created in it, once
// the lease is held.
func leasedStoreWithASession(t *testing.T) (*testsvc.SentinelCluster, *redisx.SentinelPool, *session.RedisStore, string) {
	t.Helper()
	c := testsvc.StartSentinelCluster(t)
	sp, err := redisx.NewSentinelPool(redisx.SentinelOptions{
		Addrs:       c.SentinelAddrs,
		MasterName:  c.MasterName,
		PoolOptions: redisx.PoolOptions{ConnectTimeout: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	opts := session.StoreOptions(30*time.Minute, 12*time.Hour, nil)
	opts.WaitReplicas, opts.WaitTimeout = 1, time.Second
	store := session.NewRedisStoreWithReplicaAndLease(sp.Pool(), sp.ReplicaPool(), sp.PrimaryLease, opts)
	key := sessiontest.NewKeyFor(t, 1)
	if _, err := store.Create(t.Context(), key, 1, []byte("alice"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "the primary lease", func() error {
		if !sp.PrimaryTrusted() {
			return errors.New("not held")
		}
		return nil
	})
	return c, sp, store, key
}

// The split brain this lease closes: a Hallpass replica keeps reaching the
// primary but is cut off from every Sentinel (frozen here), while on the
// other side of the partition the session is revoked on the server a
// failover promotes (here: removed from the replica only). Within
// down-after of the cut the store stops using the primary's answers, and
// from then on it never serves the session: the replica says it is gone,
// or, the replica out of reach too, the read fails.
func TestASessionRevokedAcrossAPartitionIsNotServedOnceTheSentinelsAreCutOff(t *testing.T) {
	const downAfter = 1500 * time.Millisecond // testsvc's Sentinels, as deploy/redis/sentinel.conf
	c, _, store, key := leasedStoreWithASession(t)
	ctx := t.Context()
	removeFromReplica(t, c.Replica(t), key)
	if _, found, err := store.FindCtx(ctx, key); err != nil || !found {
		t.Fatalf("Find with the Sentinels up = %v, %v; want the primary's session", found, err)
	}

	cut := time.Now()
	c.FreezeSentinels(t)
	served, last := 0, time.Duration(0)
	for {
		_, found, err := store.FindCtx(ctx, key)
		if err != nil || !found {
			t.Logf("first read not served from the primary: found %v, %v", found, err)
			break
		}
		served, last = served+1, time.Since(cut)
		if last > downAfter {
			t.Fatalf("the session was still served from the primary %s after the Sentinels were cut off", last)
		}
	}
	t.Logf("served from the primary until %s after the cut (%d reads)", last.Round(time.Millisecond), served)
	for stop := time.Now().Add(3 * time.Second); time.Now().Before(stop); {
		if _, found, err := store.FindCtx(ctx, key); err == nil && found {
			t.Fatalf("the session was served %s after the Sentinels were cut off", time.Since(cut).Round(time.Millisecond))
		}
	}
}

// On the majority side of a failover nothing changes for page views: the
// primary is killed, its lease lapses, the Sentinels promote the replica,
// and a new lease is granted for it; every read on the way finds the
// session (from the replica, then the new primary), with production's
// down-after.
func TestEveryReadFindsTheSessionThroughAFailoverWithTheLease(t *testing.T) {
	const downAfter = 1500 * time.Millisecond // testsvc's Sentinels, as deploy/redis/sentinel.conf
	c, sp, store, key := leasedStoreWithASession(t)
	ctx := t.Context()

	old := c.KillPrimary(t)
	killed := time.Now()
	reads, unleased := 0, 0
	var lapsed, regained time.Duration
	for deadline := killed.Add(45 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatalf("no lease on a new primary within 45 s of the kill (%d reads)", reads)
		}
		_, found, err := store.FindCtx(ctx, key)
		reads++
		if err != nil || !found {
			t.Fatalf("read %d, %s after the kill: found %v, %v; want the session", reads, time.Since(killed).Round(time.Millisecond), found, err)
		}
		held := sp.PrimaryTrusted()
		switch {
		case !held && lapsed == 0:
			lapsed = time.Since(killed)
		case !held:
			unleased++
		case lapsed != 0 && sp.MasterAddr() != old:
			regained = time.Since(killed)
		}
		if regained != 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // pace the reads
	}
	t.Logf("%d reads, all found the session; lease lapsed %s after the kill, held on the new primary %s after it (%d reads without it)",
		reads, lapsed.Round(time.Millisecond), regained.Round(time.Millisecond), unleased)
}

// With two Redis replicas, WAIT 1 may be counted by the replica that is not
// read. While the primary lives and its lease is not held (the Sentinels
// out of reach for a moment), a replica read could then find a session
// whose revocation was acknowledged: the replica read lags behind (here it
// stopped replicating altogether). The primary, still answering, is asked
// too, and the session is served only when both have it.
func TestARevocationAcknowledgedByTheOtherReplicaIsNotServedWhileThePrimaryLives(t *testing.T) {
	c := testsvc.StartSentinelClusterWithReplicas(t, 2)
	primary, lagging := c.Primary(t), c.Replicas(t)[0] // the other replica will acknowledge the revocation
	c.FreezeSentinels(t)                               // so that none puts the lagging replica right
	opts := session.StoreOptions(30*time.Minute, 12*time.Hour, nil)
	opts.WaitReplicas, opts.WaitTimeout = 1, time.Second
	noLease := func() time.Time { return time.Time{} }
	store := session.NewRedisStoreWithReplicaAndLease(newRedisPool(t, primary.URL), newRedisPool(t, lagging.URL), noLease, opts)
	ctx := t.Context()
	revoked, kept := sessiontest.NewKeyFor(t, 1), sessiontest.NewKeyFor(t, 1)
	for _, key := range []string{revoked, kept} {
		if _, err := store.Create(ctx, key, 1, []byte("alice"), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 5*time.Second, "both sessions on the lagging replica", func() error {
		n, err := redis.Int(lagging.Conn(t).Do("EXISTS", session.RedisSessionPrefix+revoked, session.RedisSessionPrefix+kept))
		if err == nil && n != 2 {
			err = fmt.Errorf("%d of 2", n)
		}
		return err
	})
	// The lagging replica keeps what it has and takes nothing more.
	if _, err := lagging.Conn(t).Do("REPLICAOF", "NO", "ONE"); err != nil {
		t.Fatal(err)
	}
	if n, err := store.Revoke(ctx, 1, []string{revoked}, session.EndedSignedOut); err != nil || n != 1 {
		t.Fatalf("Revoke = %d, %v; want 1 acknowledged (WAIT counted the other replica)", n, err)
	}
	if n, err := redis.Int(lagging.Conn(t).Do("EXISTS", session.RedisSessionPrefix+revoked)); err != nil || n != 1 {
		t.Fatalf("the lagging replica has the revoked session: EXISTS = %d, %v; want 1 (else this test proves nothing)", n, err)
	}

	if _, found, err := store.FindCtx(ctx, revoked); err != nil || found {
		t.Fatalf("Find of the revoked session = found %v, %v; want not found", found, err)
	}
	if _, _, found, err := store.FindExpiring(ctx, revoked); err != nil || found {
		t.Fatalf("FindExpiring of the revoked session = found %v, %v; want not found", found, err)
	}
	if b, found, err := store.FindCtx(ctx, kept); err != nil || !found || string(b) != "alice" {
		t.Fatalf("Find of the session still live = %q, %v, %v; want it served", b, found, err)
	}
}
