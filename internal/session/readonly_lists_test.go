package session_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// listed is what the session listings hold: for each of alice and bob
// their live sessions, and the index members a listing that prunes would
// remove (a session revoked, one ended by its idle timeout).
type listed struct {
	alice, bob    int64
	aliceLive     []string // keys
	bobLive       []string
	revoked, idle string
	data          map[string]string // key → session data
}

// seedListings gives alice two live sessions, one revoked and one ended by
// its idle timeout (its key gone, its index members left for a listing to
// prune), and bob one, through r's store; it returns once the replica
// holds all of it. Nothing is listed on the primary, so nothing is pruned.
func seedListings(t *testing.T, r *replicated) listed {
	t.Helper()
	ctx := t.Context()
	l := listed{alice: sessiontest.NewUserID(t), bob: sessiontest.NewUserID(t), data: map[string]string{}}
	create := func(s *session.RedisStore, user int64, data string) string {
		t.Helper()
		key := sessiontest.NewKeyFor(t, user)
		if _, err := s.Create(ctx, key, user, []byte(data), time.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
			t.Fatalf("Create(%s): %v", data, err)
		}
		l.data[key] = data
		return key
	}
	l.aliceLive = []string{create(r.store, l.alice, "alice's laptop"), create(r.store, l.alice, "alice's phone")}
	l.bobLive = []string{create(r.store, l.bob, "bob's laptop")}
	l.revoked = create(r.store, l.alice, "alice's lost tablet")
	if n, err := r.store.Revoke(ctx, l.alice, []string{l.revoked}, session.EndedByAdmin); err != nil || n != 1 {
		t.Fatalf("Revoke(alice's lost tablet) = %d, %v", n, err)
	}
	// Idle for longer than its store's idle timeout: Redis drops the
	// session, and it stays in alice's index until its absolute expiry.
	shortIdle := session.NewRedisStore(newRedisPool(t, r.primary.URL), session.StoreOptions(300*time.Millisecond, 12*time.Hour, nil))
	l.idle = create(shortIdle, l.alice, "alice's idle desktop")
	err := testkit.PollUntil(5*time.Second, func() error {
		if n, err := redis.Int(r.replica.Conn(t).Do("EXISTS", session.RedisSessionPrefix+l.idle)); err != nil || n != 0 {
			return fmt.Errorf("the idle session is still on the replica: %d, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitForKey(r.replica, session.RedisSessionPrefix+l.bobLive[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := redis.Float64(r.replica.Conn(t).Do("ZSCORE", "hp:u:{"+session.UserTag(l.alice)+"}"+fmt.Sprint(l.alice), l.idle)); err != nil {
		t.Fatalf("the idle session is not in alice's index on the replica (%v): nothing left to skip", err)
	}
	return l
}

// TestSessionListsAreReadFromTheReplicaWhileThePrimaryIsDead kills the
// primary (SIGKILL, no failover) and lists sessions the way the devices
// page and the admin pages do: every listing is answered by the replica,
// with the live sessions only (the revoked one and the idle one, still in
// alice's index, left out), and the replica is left exactly as it was, its
// indexes unpruned.
func TestSessionListsAreReadFromTheReplicaWhileThePrimaryIsDead(t *testing.T) {
	r := startReplicated(t, 1)
	l := seedListings(t, r)
	before := snapshot(t, r.replica)

	r.primary.Kill(t)
	checkListings(t, r.store, l)
	if after := snapshot(t, r.replica); !maps.Equal(after, before) {
		t.Errorf("the replica changed while it answered the listings: %d keys before, %d after", len(before), len(after))
	}
}

// TestSessionListsOnAPrimaryThatRefusesWritesDoNotFail is the moment after
// a failover when the promoted primary answers but takes no writes until
// the old one is back as its replica (min-replicas-to-write): the listings,
// which prune as they go, are answered without pruning instead of failing.
func TestSessionListsOnAPrimaryThatRefusesWritesDoNotFail(t *testing.T) {
	r := startReplicated(t, 1)
	l := seedListings(t, r)
	if _, err := r.primary.Conn(t).Do("CONFIG", "SET", "min-replicas-to-write", 2); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, r.primary)

	checkListings(t, r.store, l)
	if after := snapshot(t, r.primary); !maps.Equal(after, before) {
		t.Errorf("the primary changed while refusing writes: %d keys before, %d after", len(before), len(after))
	}
}

// checkListings checks that every listing of s returns exactly l's live
// sessions.
func checkListings(t *testing.T, s *session.RedisStore, l listed) {
	t.Helper()
	ctx := context.Background()
	live := slices.Concat(l.aliceLive, l.bobLive)
	for user, want := range map[int64][]string{l.alice: l.aliceLive, l.bob: l.bobLive} {
		entries, err := s.ListUser(ctx, user)
		if err != nil {
			t.Fatalf("ListUser: %v", err)
		}
		if got := sortedEntryKeys(entries); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("ListUser = %s, want %s", l.names(got), l.names(want))
		}
		for _, e := range entries {
			if string(e.Data) != l.data[e.Key] {
				t.Errorf("ListUser: %s holds %q", l.names([]string{e.Key}), e.Data)
			}
		}
		keys, err := s.ListUserKeys(ctx, user)
		if err != nil {
			t.Fatalf("ListUserKeys: %v", err)
		}
		if got := slices.Sorted(slices.Values(keys)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("ListUserKeys = %s, want %s", l.names(got), l.names(want))
		}
	}
	nobody := sessiontest.NewUserID(t)
	counts, err := s.CountUsers(ctx, []int64{l.alice, l.bob, nobody})
	if err != nil {
		t.Fatalf("CountUsers: %v", err)
	}
	if want := map[int64]int{l.alice: 2, l.bob: 1, nobody: 0}; !maps.Equal(counts, want) {
		t.Errorf("CountUsers(alice, bob, nobody) = %v, want %v", counts, want)
	}
	if n, err := s.Count(ctx); err != nil || n != len(live) {
		t.Errorf("Count = %d, %v; want %d", n, err, len(live))
	}
	recent, err := s.Recent(ctx, 0, 10)
	if err != nil {
		t.Fatalf("Recent: %v", err)
	}
	if got := sortedEntryKeys(recent); !slices.Equal(got, slices.Sorted(slices.Values(live))) {
		t.Errorf("Recent(0, 10) = %s, want %s", l.names(got), l.names(live))
	}
	for i := range recent {
		page, err := s.Recent(ctx, i, 1)
		if err != nil || len(page) != 1 || page[0].Key != recent[i].Key {
			t.Errorf("Recent(%d, 1) = %s, %v; want %s, the %d-th of Recent(0, 10)", i, l.names(sortedEntryKeys(page)), err, l.names([]string{recent[i].Key}), i+1)
		}
	}
}

// names says which sessions keys are, by their data.
func (l listed) names(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = l.data[k]
	}
	return out
}

func sortedEntryKeys(entries []session.Entry) []string {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return slices.Sorted(slices.Values(keys))
}

// snapshot is every key on srv with its serialized value (DUMP), to tell
// whether anything was written. A key past its time to live is left out,
// whether or not its deletion has reached srv yet.
func snapshot(t *testing.T, srv *testsvc.RedisServer) map[string]string {
	t.Helper()
	c := srv.Conn(t)
	keys, err := redis.Strings(c.Do("KEYS", "*"))
	if err != nil {
		t.Fatalf("snapshot %s: %v", srv.Addr, err)
	}
	snap := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := redis.String(c.Do("DUMP", k))
		switch {
		case errors.Is(err, redis.ErrNil):
		case err != nil:
			t.Fatalf("snapshot %s: DUMP %s: %v", srv.Addr, k, err)
		default:
			snap[k] = v
		}
	}
	return snap
}
