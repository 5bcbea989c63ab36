package session_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

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
			_, err := r.store.Create(ctx, sessiontest.NewKey(t), 3, []byte("x"), expiry, session.Limit{}, session.Origin{})
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
	key := sessiontest.NewKey(t)
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
			key := sessiontest.NewKey(t)
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
