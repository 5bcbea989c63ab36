// Package sessiontest holds the contract every session.Store must meet, as
// one suite each implementation runs against itself.
package sessiontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/testkit"
)

// Timing of the expiry cases. Stores that expire entries on their own clock
// (Redis) need these to pass for real, so they are short; the suite polls for
// the outcome rather than sleeping.
const (
	shortWindow = 250 * time.Millisecond
	longWindow  = time.Hour
	pollFor     = 5 * time.Second
)

// RunStoreContract checks the store newStore returns against the contract of
// session.Store. newStore must build a store on opts exactly as given: the
// suite sets opts.Now to a clock it advances. Session keys and user IDs it
// uses are random, so stores may share a backend between cases; but Count
// and Recent see the whole backend, so it must hold no sessions when the
// suite starts and nothing else may write to it while the suite runs. The
// case that checks them runs first, before the parallel cases start.
//
// Cases that share a backend also prune its global index with their own
// clocks, so none advances its clock by more than a few seconds: well inside
// the hour that the sessions of other cases live.
//
// Expiry is checked twice over: the suite advances its clock past the
// deadline, then polls with a real deadline until the entry is gone. A store
// that expires by Options.Now (memory) passes at once; one that hands a time
// to live to its backend (Redis) passes once the short window has really
// elapsed. Either way the other bound is an hour away, so the store must have
// used the sooner one.
func RunStoreContract(t *testing.T, newStore func(t *testing.T, opts session.Options) session.Store) {
	t.Helper()
	ctx := context.Background()
	noLimit := session.Limit{}

	// build returns a store on a fresh fake clock, with an hour's idle
	// timeout and lifetime unless set.
	build := func(t *testing.T, opts session.Options) (session.Store, *testkit.Clock) {
		t.Helper()
		clk := testkit.NewClock(time.Now())
		if opts.IdleTimeout == 0 {
			opts.IdleTimeout = longWindow
		}
		if opts.Lifetime == 0 {
			opts.Lifetime = longWindow
		}
		opts.Now = clk.Now
		return newStore(t, opts), clk
	}

	t.Run("CountAndRecentSeeLiveSessionsMostRecentlyActiveFirst", func(t *testing.T) {
		// Not parallel: Count and Recent see the whole backend, so this
		// runs alone, before the parallel cases start.
		s, clk := build(t, session.Options{})
		if n := mustCount(t, s); n != 0 {
			t.Fatalf("Count of an empty store = %d; the suite needs a backend nothing else writes to", n)
		}
		alice, bob := NewUserID(t), NewUserID(t)
		keys := make([]string, 5)
		for i := range keys {
			user := alice
			if i%2 == 1 {
				user = bob
			}
			keys[i] = NewKeyFor(t, user)
			mustCreate(t, s, keys[i], user, fmt.Appendf(nil, "s%d", i), clk.Now().Add(2*longWindow), noLimit)
			clk.Advance(time.Second)
		}
		mustCommit(t, s, keys[1], []byte("s1 again"), clk.Now().Add(2*longWindow))
		short := NewKeyFor(t, alice)
		mustCreate(t, s, short, alice, []byte("short"), clk.Now().Add(shortWindow), noLimit)
		if n := mustCount(t, s); n != 6 {
			t.Fatalf("Count = %d, want 6", n)
		}
		clk.Advance(shortWindow + time.Millisecond)
		if n := mustCount(t, s); n != 5 {
			t.Fatalf("Count after one session expired = %d, want 5", n)
		}

		// keys[1] was committed last; the others by creation, latest first.
		order := []string{keys[1], keys[4], keys[3], keys[2], keys[0]}
		data := map[string]string{keys[0]: "s0", keys[1]: "s1 again", keys[2]: "s2", keys[3]: "s3", keys[4]: "s4"}
		pages := []struct {
			offset, limit int
			want          []string
		}{
			{0, 2, order[0:2]},
			{2, 2, order[2:4]},
			{4, 2, order[4:]},
			{5, 2, nil},
			{0, 100, order},
			{0, 0, nil},
			{-3, 1, order[:1]},
		}
		for _, p := range pages {
			got := mustRecent(t, s, p.offset, p.limit)
			if !slices.Equal(entryKeys(got), p.want) {
				t.Errorf("Recent(%d, %d) = %s, want %s", p.offset, p.limit, names(entryKeys(got), keys), names(p.want, keys))
			}
			for _, e := range got {
				if string(e.Data) != data[e.Key] {
					t.Errorf("Recent: data of %s = %q, want %q", names([]string{e.Key}, keys), e.Data, data[e.Key])
				}
			}
		}

		mustDelete(t, s, keys[4])
		if n := mustRevoke(t, s, bob, []string{keys[3]}, session.EndedByAdmin); n != 1 {
			t.Fatalf("Revoke = %d, want 1", n)
		}
		if n := mustCount(t, s); n != 3 {
			t.Fatalf("Count after a Delete and a Revoke = %d, want 3", n)
		}
		want := []string{keys[1], keys[2], keys[0]}
		if got := entryKeys(mustRecent(t, s, 0, 10)); !slices.Equal(got, want) {
			t.Fatalf("Recent after a Delete and a Revoke = %s, want %s", names(got, keys), names(want, keys))
		}

		mustRevokeUser(t, s, alice, "", session.EndedByAdmin)
		mustRevokeUser(t, s, bob, "", session.EndedByAdmin)
		if n := mustCount(t, s); n != 0 {
			t.Fatalf("Count after revoking everyone = %d, want 0", n)
		}
	})

	t.Run("CreateThenFindAndCommitThenFindReturnTheSameBytes", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		key := NewKeyFor(t, user)
		want := []byte("data\x00with\xffbinary")
		if evicted := mustCreate(t, s, key, user, want, clk.Now().Add(longWindow), noLimit); len(evicted) != 0 {
			t.Fatalf("Create without a limit evicted %q", evicted)
		}
		got := mustFind(t, s, key)
		if !bytes.Equal(got, want) {
			t.Fatalf("Find after Create = %q, want %q", got, want)
		}
		got[0] = 'X' // the caller owns what it was given
		if again := mustFind(t, s, key); !bytes.Equal(again, want) {
			t.Fatalf("Find after changing the returned slice = %q, want %q", again, want)
		}

		want = []byte("updated\x00\xff")
		mustCommit(t, s, key, want, clk.Now().Add(longWindow))
		if got := mustFind(t, s, key); !bytes.Equal(got, want) {
			t.Fatalf("Find after Commit = %q, want %q", got, want)
		}
	})

	t.Run("NonContextMethodsWork", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		key := NewKeyFor(t, user)
		mustCreate(t, s, key, user, []byte("u"), clk.Now().Add(longWindow), noLimit)
		if err := s.Commit(key, []byte("v"), clk.Now().Add(longWindow)); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if b, found, err := s.Find(key); err != nil || !found || string(b) != "v" {
			t.Fatalf("Find = %q, %v, %v; want v, true, nil", b, found, err)
		}
		if err := s.Delete(key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, found, err := s.Find(key); err != nil || found {
			t.Fatalf("Find after Delete = found %v, err %v; want not found", found, err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})

	t.Run("FindOfUnknownKeyIsNotFound", func(t *testing.T) {
		t.Parallel()
		s, _ := build(t, session.Options{})
		mustNotFind(t, s, NewKey(t))
		mustNotFind(t, s, "")
	})

	t.Run("DeleteThenFindIsNotFound", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		key, other := NewKeyFor(t, user), NewKeyFor(t, user)
		mustCreate(t, s, key, user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		mustCreate(t, s, other, user, []byte("w"), clk.Now().Add(longWindow), noLimit)
		mustDelete(t, s, key)
		mustNotFind(t, s, key)
		if got := mustFind(t, s, other); string(got) != "w" {
			t.Fatalf("Find of another key after Delete = %q, want w", got)
		}
	})

	t.Run("DeleteOfUnknownKeyIsNoError", func(t *testing.T) {
		t.Parallel()
		s, _ := build(t, session.Options{})
		mustDelete(t, s, NewKey(t))
	})

	t.Run("CommitOfANeverCreatedKeyIsRevokedAndWritesNothing", func(t *testing.T) {
		// Only Create makes sessions: a Commit cannot bring back a
		// session that expired or was revoked, tombstone or not.
		t.Parallel()
		s, clk := build(t, session.Options{})
		key := NewKey(t)
		if err := s.CommitCtx(ctx, key, []byte("v"), clk.Now().Add(longWindow)); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Commit of a never-created key = %v, want ErrRevoked", err)
		}
		mustNotFind(t, s, key)
	})

	t.Run("CommitAfterDeleteIsRevokedAndWritesNothing", func(t *testing.T) {
		// The in-flight request: it loaded the session, the session was
		// revoked, then the request saves what it loaded.
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		key := NewKeyFor(t, user)
		mustCreate(t, s, key, user, []byte("signed in"), clk.Now().Add(longWindow), noLimit)
		loaded := mustFind(t, s, key)
		mustDelete(t, s, key)
		err := s.CommitCtx(ctx, key, loaded, clk.Now().Add(longWindow))
		if !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Commit after Delete = %v, want ErrRevoked", err)
		}
		mustNotFind(t, s, key)
		// Still revoked on a second try, and for a key never committed.
		if err := s.CommitCtx(ctx, key, loaded, clk.Now().Add(longWindow)); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("second Commit after Delete = %v, want ErrRevoked", err)
		}
		never := NewKey(t)
		mustDelete(t, s, never)
		if err := s.CommitCtx(ctx, never, loaded, clk.Now().Add(longWindow)); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Commit of a key deleted before it existed = %v, want ErrRevoked", err)
		}
		mustNotFind(t, s, key)
		mustNotFind(t, s, never)
	})

	t.Run("TombstonesAreNeverFound", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		keys := []string{NewKeyFor(t, user), NewKeyFor(t, user), NewKeyFor(t, user)}
		mustCreate(t, s, keys[0], user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		for _, k := range keys {
			mustDelete(t, s, k)
		}
		for _, k := range keys {
			mustNotFind(t, s, k)
			_ = s.CommitCtx(ctx, k, []byte("again"), clk.Now().Add(longWindow))
			_, _ = s.Create(ctx, k, user, []byte("again"), clk.Now().Add(longWindow), noLimit, session.Origin{})
			mustNotFind(t, s, k)
		}
	})

	t.Run("CreateOverATombstoneIsRevoked", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		deleted, revoked := NewKeyFor(t, user), NewKeyFor(t, user)
		mustDelete(t, s, deleted)
		mustCreate(t, s, revoked, user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		mustRevoke(t, s, user, []string{revoked}, session.EndedByAdmin)
		for _, k := range []string{deleted, revoked} {
			_, err := s.Create(ctx, k, user, []byte("again"), clk.Now().Add(longWindow), noLimit, session.Origin{})
			if !errors.Is(err, session.ErrRevoked) {
				t.Errorf("Create over a tombstone = %v, want ErrRevoked", err)
			}
			mustNotFind(t, s, k)
		}
		if got := mustListUser(t, s, user); len(got) != 0 {
			t.Fatalf("ListUser after refused Creates = %d entries, want none", len(got))
		}
	})

	t.Run("CreateOfALiveKeyFailsAndChangesNothing", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		// other shares owner's shard tag, so the second Create reaches the
		// live key rather than failing on the tag (or, on Redis Cluster,
		// with CROSSSLOT).
		owner := NewUserID(t)
		other := newUserIDWithTag(t, session.UserTag(owner))
		key := NewKeyFor(t, owner)
		mustCreate(t, s, key, owner, []byte("owner's"), clk.Now().Add(longWindow), noLimit)
		_, err := s.Create(ctx, key, other, []byte("other's"), clk.Now().Add(longWindow), noLimit, session.Origin{})
		if err == nil || errors.Is(err, session.ErrRevoked) || errors.Is(err, session.ErrTooManySessions) {
			t.Fatalf("Create of a live key = %v, want a plain error", err)
		}
		if got := mustFind(t, s, key); string(got) != "owner's" {
			t.Fatalf("Find = %q, want owner's", got)
		}
		if got := mustListUser(t, s, other); len(got) != 0 {
			t.Fatalf("the other user lists %d sessions, want none", len(got))
		}
	})

	t.Run("CreateRefusesABadLimitOrAPastExpiry", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		cases := []struct {
			name   string
			expiry time.Time
			limit  session.Limit
		}{
			{"cap without a policy", clk.Now().Add(longWindow), session.Limit{Max: 1}},
			{"unknown policy", clk.Now().Add(longWindow), session.Limit{Max: 1, Policy: "ask-nicely"}},
			{"negative cap", clk.Now().Add(longWindow), session.Limit{Max: -1, Policy: session.Reject}},
			{"past expiry", clk.Now().Add(-time.Second), noLimit},
			{"expiry now", clk.Now(), noLimit},
		}
		for _, tc := range cases {
			key := NewKeyFor(t, user)
			_, err := s.Create(ctx, key, user, []byte("v"), tc.expiry, tc.limit, session.Origin{})
			if err == nil || errors.Is(err, session.ErrRevoked) || errors.Is(err, session.ErrTooManySessions) {
				t.Errorf("Create with %s = %v, want a plain error", tc.name, err)
			}
			mustNotFind(t, s, key)
		}
		if got := mustListUser(t, s, user); len(got) != 0 {
			t.Fatalf("ListUser after refused Creates = %d entries, want none", len(got))
		}
	})

	t.Run("CommitOfExistingKeyUpdatesIt", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		key := NewKeyFor(t, user)
		mustCreate(t, s, key, user, []byte("first"), clk.Now().Add(longWindow), noLimit)
		mustCommit(t, s, key, []byte("second"), clk.Now().Add(longWindow))
		if got := mustFind(t, s, key); string(got) != "second" {
			t.Fatalf("Find = %q, want second", got)
		}
	})

	t.Run("CommitWithPastExpiryRemovesTheSession", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		key := NewKeyFor(t, user)
		mustCreate(t, s, key, user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		mustCommit(t, s, key, []byte("v"), clk.Now().Add(-time.Second))
		mustNotFind(t, s, key)
		if got := mustListUser(t, s, user); len(got) != 0 {
			t.Fatalf("ListUser after the session ended = %d entries, want none", len(got))
		}
		if err := s.CommitCtx(ctx, key, []byte("v"), clk.Now().Add(longWindow)); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Commit after the session ended = %v, want ErrRevoked", err)
		}
		mustNotFind(t, s, key)

		now := NewKeyFor(t, user)
		mustCreate(t, s, now, user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		mustCommit(t, s, now, []byte("v"), clk.Now())
		mustNotFind(t, s, now)
	})

	expiryCases := []struct {
		name        string
		idleTimeout time.Duration
		scsExpiry   time.Duration
	}{
		{"ExpiresAtIdleTimeoutBeforeScsExpiry", shortWindow, longWindow},
		{"ExpiresAtScsExpiryBeforeIdleTimeout", longWindow, shortWindow},
	}
	for _, tc := range expiryCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, clk := build(t, session.Options{IdleTimeout: tc.idleTimeout})
			user := NewUserID(t)
			key := NewKeyFor(t, user)
			window := min(tc.idleTimeout, tc.scsExpiry)
			start := time.Now()
			mustCreate(t, s, key, user, []byte("v"), clk.Now().Add(tc.scsExpiry), noLimit)

			// Well inside the window the session is there. Only checked
			// while real time is also well inside it: a store on a real
			// clock may rightly have dropped it on a slow machine.
			clk.Advance(window / 2)
			_, found, err := s.FindCtx(ctx, key)
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if !found && time.Since(start) < window/2 {
				t.Fatalf("session gone %s into a %s window", time.Since(start), window)
			}

			clk.Advance(window/2 + time.Millisecond)
			waitNotFound(t, s, key)
		})
	}

	t.Run("IdleWindowRestartsOnCommit", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{IdleTimeout: shortWindow})
		user := NewUserID(t)
		key := NewKeyFor(t, user)
		created := time.Now()
		mustCreate(t, s, key, user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		clk.Advance(shortWindow / 2)
		start := time.Now()
		if err := s.CommitCtx(ctx, key, []byte("v2"), clk.Now().Add(longWindow)); err != nil {
			// A store on a real clock may rightly have let the session go
			// on a slow machine; then the window cannot be checked.
			if errors.Is(err, session.ErrRevoked) && time.Since(created) >= shortWindow/2 {
				t.Skipf("machine too slow: %s passed between Create and Commit", time.Since(created))
			}
			t.Fatalf("Commit inside the idle window: %v", err)
		}
		clk.Advance(shortWindow/2 + shortWindow/4) // past the first window, inside the second
		b, found, err := s.FindCtx(ctx, key)
		if err != nil {
			t.Fatalf("Find: %v", err)
		}
		if time.Since(start) < shortWindow/2 && (!found || string(b) != "v2") {
			t.Fatalf("Find after a refreshing Commit = %q, %v; want v2, true", b, found)
		}
		clk.Advance(shortWindow)
		waitNotFound(t, s, key)
	})

	t.Run("TombstoneExpiresAfterLifetime", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{Lifetime: shortWindow})
		user := NewUserID(t)
		key := NewKeyFor(t, user)
		mustDelete(t, s, key)
		if _, err := s.Create(ctx, key, user, []byte("v"), clk.Now().Add(longWindow), noLimit, session.Origin{}); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Create right after Delete = %v, want ErrRevoked", err)
		}
		clk.Advance(shortWindow + time.Millisecond)
		testkit.Eventually(t, pollFor, "tombstone to expire", func() error {
			_, err := s.Create(ctx, key, user, []byte("v"), clk.Now().Add(longWindow), noLimit, session.Origin{})
			if err != nil && !errors.Is(err, session.ErrRevoked) {
				t.Fatalf("Create: %v", err)
			}
			return err
		})
		if got := mustFind(t, s, key); string(got) != "v" {
			t.Fatalf("Find = %q, want v", got)
		}
		if r := mustEndReason(t, s, key); r != "" {
			t.Fatalf("EndReason after the tombstone expired = %q, want none", r)
		}
	})

	t.Run("EndReasonSaysWhyASessionEnded", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		signedOut, revoked, live := NewKeyFor(t, user), NewKeyFor(t, user), NewKeyFor(t, user)
		for _, k := range []string{signedOut, revoked, live} {
			mustCreate(t, s, k, user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		}
		mustDelete(t, s, signedOut)
		mustRevoke(t, s, user, []string{revoked}, session.EndedFromOtherDevice)
		cases := []struct {
			name string
			key  string
			want session.EndReason
		}{
			{"signed out", signedOut, session.EndedSignedOut},
			{"revoked", revoked, session.EndedFromOtherDevice},
			{"live", live, ""},
			{"unknown", NewKey(t), ""},
		}
		for _, tc := range cases {
			if got := mustEndReason(t, s, tc.key); got != tc.want {
				t.Errorf("EndReason of a %s session = %q, want %q", tc.name, got, tc.want)
			}
		}
	})

	t.Run("ListUserReturnsExactlyTheUsersLiveSessions", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		alice, bob := NewUserID(t), NewUserID(t)
		long := clk.Now().Add(longWindow)
		want := map[string]string{}
		for i := range 3 {
			k := NewKeyFor(t, alice)
			want[k] = fmt.Sprintf("alice %d", i)
			mustCreate(t, s, k, alice, []byte(want[k]), long, noLimit)
		}
		expired, signedOut, revoked := NewKeyFor(t, alice), NewKeyFor(t, alice), NewKeyFor(t, alice)
		bobs := NewKeyFor(t, bob)
		mustCreate(t, s, expired, alice, []byte("expired"), clk.Now().Add(shortWindow), noLimit)
		mustCreate(t, s, signedOut, alice, []byte("signed out"), long, noLimit)
		mustCreate(t, s, revoked, alice, []byte("revoked"), long, noLimit)
		mustCreate(t, s, bobs, bob, []byte("bob's"), long, noLimit)
		mustDelete(t, s, signedOut)
		mustRevoke(t, s, alice, []string{revoked}, session.EndedByAdmin)
		clk.Advance(shortWindow + time.Millisecond)

		got := mustListUser(t, s, alice)
		if len(got) != len(want) {
			t.Errorf("ListUser = %d entries, want %d", len(got), len(want))
		}
		for _, e := range got {
			if w, ok := want[e.Key]; !ok || string(e.Data) != w {
				t.Errorf("ListUser holds %q (data %q), not one of alice's live sessions", e.Key, e.Data)
			}
		}
		if got := mustListUser(t, s, bob); len(got) != 1 || got[0].Key != bobs || string(got[0].Data) != "bob's" {
			t.Errorf("ListUser of bob = %v, want just his session", got)
		}
		if got := mustListUser(t, s, NewUserID(t)); len(got) != 0 {
			t.Errorf("ListUser of a user without sessions = %v, want none", got)
		}
	})

	t.Run("ListUserKeysReturnsExactlyTheUsersLiveKeys", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		alice, bob := NewUserID(t), NewUserID(t)
		long := clk.Now().Add(longWindow)
		live := []string{NewKeyFor(t, alice), NewKeyFor(t, alice)}
		for _, k := range live {
			mustCreate(t, s, k, alice, []byte("v"), long, noLimit)
		}
		expired, signedOut, revoked := NewKeyFor(t, alice), NewKeyFor(t, alice), NewKeyFor(t, alice)
		mustCreate(t, s, expired, alice, []byte("v"), clk.Now().Add(shortWindow), noLimit)
		mustCreate(t, s, signedOut, alice, []byte("v"), long, noLimit)
		mustCreate(t, s, revoked, alice, []byte("v"), long, noLimit)
		mustCreate(t, s, NewKeyFor(t, bob), bob, []byte("v"), long, noLimit)
		mustDelete(t, s, signedOut)
		mustRevoke(t, s, alice, []string{revoked}, session.EndedByAdmin)
		clk.Advance(shortWindow + time.Millisecond)

		all := []string{live[0], live[1], expired, signedOut, revoked}
		if got := sorted(mustListUserKeys(t, s, alice)...); !slices.Equal(got, sorted(live...)) {
			t.Errorf("ListUserKeys = %s, want a b", names(got, all))
		}
		if got := sortedKeys(mustListUser(t, s, alice)); !slices.Equal(got, sorted(live...)) {
			t.Errorf("ListUser after ListUserKeys = %s, want a b", names(got, all))
		}
		if got := mustListUserKeys(t, s, NewUserID(t)); len(got) != 0 {
			t.Errorf("ListUserKeys of a user without sessions = %d keys, want none", len(got))
		}
	})

	t.Run("CountUsersCountsEachUsersLiveSessions", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		alice, bob, carol, nobody := NewUserID(t), NewUserID(t), NewUserID(t), NewUserID(t)
		long := clk.Now().Add(longWindow)
		for range 3 {
			mustCreate(t, s, NewKeyFor(t, alice), alice, []byte("v"), long, noLimit)
		}
		// Bob: one live, one expired, one revoked, one signed out.
		mustCreate(t, s, NewKeyFor(t, bob), bob, []byte("v"), long, noLimit)
		expired, revoked, signedOut := NewKeyFor(t, bob), NewKeyFor(t, bob), NewKeyFor(t, bob)
		mustCreate(t, s, expired, bob, []byte("v"), clk.Now().Add(shortWindow), noLimit)
		mustCreate(t, s, revoked, bob, []byte("v"), long, noLimit)
		mustCreate(t, s, signedOut, bob, []byte("v"), long, noLimit)
		mustRevoke(t, s, bob, []string{revoked}, session.EndedByAdmin)
		mustDelete(t, s, signedOut)
		// Carol: only an expired session.
		mustCreate(t, s, NewKeyFor(t, carol), carol, []byte("v"), clk.Now().Add(shortWindow), noLimit)
		clk.Advance(shortWindow + time.Millisecond)

		want := map[int64]int{alice: 3, bob: 1, carol: 0, nobody: 0}
		got := mustCountUsers(t, s, []int64{alice, bob, carol, nobody, alice})
		if !maps.Equal(got, want) {
			t.Errorf("CountUsers = %v, want %v (alice, bob, carol, nobody)", got, want)
		}
		// The counts agree with the listings they pruned.
		for user, n := range want {
			if l := len(mustListUser(t, s, user)); l != n {
				t.Errorf("ListUser after CountUsers = %d entries, want %d", l, n)
			}
		}
		if got := mustCountUsers(t, s, []int64{bob}); !maps.Equal(got, map[int64]int{bob: 1}) {
			t.Errorf("CountUsers of bob alone = %v, want just bob: 1", got)
		}
		if got := mustCountUsers(t, s, nil); len(got) != 0 {
			t.Errorf("CountUsers of nobody = %v, want an empty map", got)
		}
	})

	t.Run("ListUserDropsSessionsPastTheirIdleTimeout", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{IdleTimeout: shortWindow})
		user := NewUserID(t)
		mustCreate(t, s, NewKeyFor(t, user), user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		clk.Advance(shortWindow + time.Millisecond)
		testkit.Eventually(t, pollFor, "idle session to leave the list", func() error {
			if n := len(mustListUser(t, s, user)); n != 0 {
				return fmt.Errorf("ListUser = %d entries", n)
			}
			return nil
		})
	})

	t.Run("RevokeIgnoresAnotherUsersSessions", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		alice, bob := NewUserID(t), NewUserID(t)
		alices, bobs := NewKeyFor(t, alice), NewKeyFor(t, bob)
		mustCreate(t, s, alices, alice, []byte("alice's"), clk.Now().Add(longWindow), noLimit)
		mustCreate(t, s, bobs, bob, []byte("bob's"), clk.Now().Add(longWindow), noLimit)

		if n := mustRevoke(t, s, alice, []string{bobs, NewKey(t)}, session.EndedFromOtherDevice); n != 0 {
			t.Fatalf("alice revoking bob's session and an unknown one = %d, want 0", n)
		}
		mustFind(t, s, bobs)
		if r := mustEndReason(t, s, bobs); r != "" {
			t.Fatalf("EndReason of bob's untouched session = %q", r)
		}
		if n := mustRevoke(t, s, bob, []string{bobs, bobs}, session.EndedFromOtherDevice); n != 1 {
			t.Fatalf("bob revoking his own session twice over = %d, want 1", n)
		}
		mustNotFind(t, s, bobs)
		mustFind(t, s, alices)
		if n := mustRevoke(t, s, alice, nil, session.EndedFromOtherDevice); n != 0 {
			t.Fatalf("Revoke of no keys = %d, want 0", n)
		}
	})

	t.Run("RevokeUserKeepsExactlyTheExceptedSession", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		alice, bob := NewUserID(t), NewUserID(t)
		a := []string{NewKeyFor(t, alice), NewKeyFor(t, alice), NewKeyFor(t, alice)}
		for _, k := range a {
			mustCreate(t, s, k, alice, []byte("v"), clk.Now().Add(longWindow), noLimit)
		}
		bobs := NewKeyFor(t, bob)
		mustCreate(t, s, bobs, bob, []byte("v"), clk.Now().Add(longWindow), noLimit)

		if n := mustRevokeUser(t, s, alice, a[1], session.EndedPasswordChanged); n != 2 {
			t.Fatalf("RevokeUser = %d, want 2", n)
		}
		if got := entryKeys(mustListUser(t, s, alice)); !slices.Equal(got, []string{a[1]}) {
			t.Fatalf("ListUser after RevokeUser = %d entries, want just the excepted one", len(got))
		}
		mustFind(t, s, a[1])
		mustFind(t, s, bobs)
		for _, k := range []string{a[0], a[2]} {
			mustNotFind(t, s, k)
			if r := mustEndReason(t, s, k); r != session.EndedPasswordChanged {
				t.Errorf("EndReason = %q, want %q", r, session.EndedPasswordChanged)
			}
			if err := s.CommitCtx(ctx, k, []byte("v"), clk.Now().Add(longWindow)); !errors.Is(err, session.ErrRevoked) {
				t.Errorf("Commit after RevokeUser = %v, want ErrRevoked", err)
			}
		}

		if n := mustRevokeUser(t, s, alice, "", session.EndedDisabled); n != 1 {
			t.Fatalf("RevokeUser of everything = %d, want 1", n)
		}
		if r := mustEndReason(t, s, a[1]); r != session.EndedDisabled {
			t.Errorf("EndReason = %q, want %q", r, session.EndedDisabled)
		}
		if n := mustRevokeUser(t, s, alice, "", session.EndedDisabled); n != 0 {
			t.Fatalf("RevokeUser of a user without sessions = %d, want 0", n)
		}
		mustFind(t, s, bobs)
	})

	t.Run("RevokeUsersEndsEveryListedUsersSessionsButTheExcepted", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		alice, bob, carol, dave := NewUserID(t), NewUserID(t), NewUserID(t), NewUserID(t)
		long := clk.Now().Add(longWindow)
		a := []string{NewKeyFor(t, alice), NewKeyFor(t, alice), NewKeyFor(t, alice)}
		for _, k := range a {
			mustCreate(t, s, k, alice, []byte("v"), long, noLimit)
		}
		b := []string{NewKeyFor(t, bob), NewKeyFor(t, bob)}
		for _, k := range b {
			mustCreate(t, s, k, bob, []byte("v"), long, noLimit)
		}
		carols := NewKeyFor(t, carol)
		mustCreate(t, s, carols, carol, []byte("v"), long, noLimit)

		// alice twice, dave without sessions, carol not listed; the
		// excepted key is one of alice's.
		n, err := s.RevokeUsers(ctx, []int64{bob, alice, dave, alice}, a[1], session.EndedEveryone)
		if err != nil {
			t.Fatalf("RevokeUsers: %v", err)
		}
		if n != 4 {
			t.Fatalf("RevokeUsers = %d, want 4 (two of alice's, both of bob's)", n)
		}
		if got := entryKeys(mustListUser(t, s, alice)); !slices.Equal(got, []string{a[1]}) {
			t.Errorf("alice lists %s after RevokeUsers, want just the excepted session", names(got, a))
		}
		if got := mustListUser(t, s, bob); len(got) != 0 {
			t.Errorf("bob lists %d sessions after RevokeUsers, want none", len(got))
		}
		mustFind(t, s, a[1])
		mustFind(t, s, carols)
		if r := mustEndReason(t, s, carols); r != "" {
			t.Errorf("EndReason of carol's session, not listed = %q", r)
		}
		for _, k := range []string{a[0], a[2], b[0], b[1]} {
			mustNotFind(t, s, k)
			if r := mustEndReason(t, s, k); r != session.EndedEveryone {
				t.Errorf("EndReason = %q, want %q", r, session.EndedEveryone)
			}
			if err := s.CommitCtx(ctx, k, []byte("v"), long); !errors.Is(err, session.ErrRevoked) {
				t.Errorf("Commit after RevokeUsers = %v, want ErrRevoked", err)
			}
		}
		if n, err := s.RevokeUsers(ctx, nil, "", session.EndedEveryone); err != nil || n != 0 {
			t.Errorf("RevokeUsers of no users = %d, %v; want 0", n, err)
		}
		if n, err := s.RevokeUsers(ctx, []int64{alice, bob, carol}, "", session.EndedEveryone); err != nil || n != 2 {
			t.Errorf("RevokeUsers of everything left = %d, %v; want 2 (alice's last, carol's)", n, err)
		}
	})

	t.Run("RevokeUsersOfABatchOfFiveHundredEndsThemAll", func(t *testing.T) {
		// A page of users as signing out everyone sends it, each user with
		// two sessions.
		t.Parallel()
		s, clk := build(t, session.Options{})
		long := clk.Now().Add(longWindow)
		users := make([]int64, 500)
		keys := make([]string, 0, 2*len(users))
		for i := range users {
			users[i] = NewUserID(t)
			for range 2 {
				k := NewKeyFor(t, users[i])
				mustCreate(t, s, k, users[i], []byte("v"), long, noLimit)
				keys = append(keys, k)
			}
		}
		n, err := s.RevokeUsers(ctx, users, "", session.EndedEveryone)
		if err != nil {
			t.Fatalf("RevokeUsers: %v", err)
		}
		if n != len(keys) {
			t.Errorf("RevokeUsers of %d users = %d, want %d", len(users), n, len(keys))
		}
		if counts := mustCountUsers(t, s, users); slices.ContainsFunc(slices.Collect(maps.Values(counts)), func(c int) bool { return c != 0 }) {
			t.Errorf("users with sessions left after RevokeUsers: %v", counts)
		}
		for _, k := range []string{keys[0], keys[len(keys)/2], keys[len(keys)-1]} {
			if r := mustEndReason(t, s, k); r != session.EndedEveryone {
				t.Errorf("EndReason = %q, want %q", r, session.EndedEveryone)
			}
		}
	})

	t.Run("LimitEvictsTheLeastRecentlyActive", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		limit := session.Limit{Max: 3, Policy: session.EvictOldest}
		a, b, c, d := NewKeyFor(t, user), NewKeyFor(t, user), NewKeyFor(t, user), NewKeyFor(t, user)
		for _, k := range []string{a, b, c} {
			if evicted := mustCreate(t, s, k, user, []byte("v"), clk.Now().Add(longWindow), limit); len(evicted) != 0 {
				t.Fatalf("Create under the limit evicted %d sessions", len(evicted))
			}
			clk.Advance(time.Second)
		}
		mustCommit(t, s, a, []byte("active"), clk.Now().Add(longWindow)) // a is now more recent than b and c
		clk.Advance(time.Second)

		evicted := mustCreate(t, s, d, user, []byte("v"), clk.Now().Add(longWindow), limit)
		if !slices.Equal(evicted, []string{b}) {
			t.Fatalf("Create at the limit evicted %s, want [b]", names(evicted, []string{a, b, c, d}))
		}
		mustNotFind(t, s, b)
		if r := mustEndReason(t, s, b); r != session.EndedTooMany {
			t.Fatalf("EndReason of the evicted session = %q, want %q", r, session.EndedTooMany)
		}
		if got := sortedKeys(mustListUser(t, s, user)); !slices.Equal(got, sorted(a, c, d)) {
			t.Fatalf("ListUser after eviction = %s, want a c d", names(got, []string{a, b, c, d}))
		}

		// A lower cap evicts as many as it takes: c, then a (d is newest).
		e := NewKeyFor(t, user)
		evicted = mustCreate(t, s, e, user, []byte("v"), clk.Now().Add(longWindow), session.Limit{Max: 2, Policy: session.EvictOldest})
		if got := sorted(evicted...); !slices.Equal(got, sorted(a, c)) {
			t.Fatalf("Create with Max 2 over 3 sessions evicted %s, want a and c", names(evicted, []string{a, b, c, d, e}))
		}
		if got := sortedKeys(mustListUser(t, s, user)); !slices.Equal(got, sorted(d, e)) {
			t.Fatalf("ListUser = %s, want d e", names(got, []string{a, b, c, d, e}))
		}
	})

	t.Run("LimitRejectRefusesAndWritesNothing", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		limit := session.Limit{Max: 2, Policy: session.Reject}
		first, second, third := NewKeyFor(t, user), NewKeyFor(t, user), NewKeyFor(t, user)
		mustCreate(t, s, first, user, []byte("v"), clk.Now().Add(longWindow), limit)
		mustCreate(t, s, second, user, []byte("v"), clk.Now().Add(longWindow), limit)
		_, err := s.Create(ctx, third, user, []byte("v"), clk.Now().Add(longWindow), limit, session.Origin{})
		if !errors.Is(err, session.ErrTooManySessions) {
			t.Fatalf("Create over the limit = %v, want ErrTooManySessions", err)
		}
		mustNotFind(t, s, third)
		if r := mustEndReason(t, s, third); r != "" {
			t.Fatalf("EndReason of the refused session = %q, want none", r)
		}
		if got := sortedKeys(mustListUser(t, s, user)); !slices.Equal(got, sorted(first, second)) {
			t.Fatalf("ListUser after a refused Create = %d entries, want the first two", len(got))
		}
		// Signing one out makes room, and the refused key is not burnt.
		mustDelete(t, s, first)
		mustCreate(t, s, third, user, []byte("v"), clk.Now().Add(longWindow), limit)
	})

	t.Run("EndedSessionsDoNotCountTowardTheLimit", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		limit := session.Limit{Max: 2, Policy: session.Reject}
		expired, signedOut, revoked := NewKeyFor(t, user), NewKeyFor(t, user), NewKeyFor(t, user)
		mustCreate(t, s, expired, user, []byte("v"), clk.Now().Add(shortWindow), noLimit)
		mustCreate(t, s, signedOut, user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		mustCreate(t, s, revoked, user, []byte("v"), clk.Now().Add(longWindow), noLimit)
		mustDelete(t, s, signedOut)
		mustRevoke(t, s, user, []string{revoked}, session.EndedByAdmin)
		clk.Advance(shortWindow + time.Millisecond)

		mustCreate(t, s, NewKeyFor(t, user), user, []byte("v"), clk.Now().Add(longWindow), limit)
		mustCreate(t, s, NewKeyFor(t, user), user, []byte("v"), clk.Now().Add(longWindow), limit)
		if _, err := s.Create(ctx, NewKeyFor(t, user), user, []byte("v"), clk.Now().Add(longWindow), limit, session.Origin{}); !errors.Is(err, session.ErrTooManySessions) {
			t.Fatalf("third live session = %v, want ErrTooManySessions", err)
		}
	})

	for _, policy := range []session.LimitPolicy{session.EvictOldest, session.Reject} {
		t.Run("ConcurrentCreatesKeepTheLimit/"+string(policy), func(t *testing.T) {
			// Twenty devices signing one user in at once, through replicas
			// that each see the others' sessions only through the store.
			t.Parallel()
			s, clk := build(t, session.Options{})
			user := NewUserID(t)
			limit := session.Limit{Max: 3, Policy: policy}
			const devices = 20
			keys := make([]string, devices)
			for i := range keys {
				keys[i] = NewKeyFor(t, user)
			}
			var (
				wg      sync.WaitGroup
				begin   = make(chan struct{})
				errs    = make([]error, devices)
				evicted = make([][]string, devices)
			)
			for i, k := range keys {
				wg.Go(func() {
					<-begin
					evicted[i], errs[i] = s.Create(ctx, k, user, []byte("v"), clk.Now().Add(longWindow), limit, session.Origin{})
				})
			}
			close(begin)
			wg.Wait()

			var created, refused []string
			for i, err := range errs {
				switch {
				case err == nil:
					created = append(created, keys[i])
				case errors.Is(err, session.ErrTooManySessions):
					refused = append(refused, keys[i])
				default:
					t.Fatalf("Create: %v", err)
				}
			}
			live := sortedKeys(mustListUser(t, s, user))
			if len(live) != limit.Max {
				t.Fatalf("%d concurrent Creates with %s left %d live sessions, want %d", devices, policy, len(live), limit.Max)
			}
			found := 0
			for _, k := range keys {
				if _, ok, err := s.FindCtx(ctx, k); err != nil {
					t.Fatalf("Find: %v", err)
				} else if ok {
					found++
				}
			}
			if found != limit.Max {
				t.Fatalf("%d of the sessions can be found, want %d", found, limit.Max)
			}

			switch policy {
			case session.Reject:
				if len(created) != limit.Max || len(refused) != devices-limit.Max {
					t.Fatalf("%d Creates succeeded and %d were refused, want %d and %d", len(created), len(refused), limit.Max, devices-limit.Max)
				}
				if !slices.Equal(live, sorted(created...)) {
					t.Fatal("the live sessions are not the ones whose Create succeeded")
				}
			case session.EvictOldest:
				if len(created) != devices {
					t.Fatalf("%d of %d Creates succeeded, want all", len(created), devices)
				}
				ended := map[string]bool{}
				for _, ev := range evicted {
					for _, k := range ev {
						if ended[k] {
							t.Errorf("a session was evicted twice")
						}
						ended[k] = true
						if r := mustEndReason(t, s, k); r != session.EndedTooMany {
							t.Errorf("EndReason of an evicted session = %q, want %q", r, session.EndedTooMany)
						}
					}
				}
				if len(ended) != devices-limit.Max {
					t.Fatalf("Creates reported %d evictions, want %d", len(ended), devices-limit.Max)
				}
				for _, k := range live {
					if ended[k] {
						t.Fatal("a session reported evicted is still live")
					}
				}
			}
		})
	}

	t.Run("ConcurrentCommitsNeverOutliveADelete", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		key := NewKeyFor(t, user)
		expiry := clk.Now().Add(longWindow)
		mustCreate(t, s, key, user, []byte("start"), expiry, noLimit)

		var deleted atomic.Bool // set once some Delete has returned
		errs := race(func(w, r int) error {
			switch (w + r) % 7 {
			case 3:
				if err := s.DeleteCtx(ctx, key); err != nil {
					return fmt.Errorf("Delete: %w", err)
				}
				deleted.Store(true)
			case 1, 5:
				return checkFind(ctx, s, key, deleted.Load())
			default:
				return checkCommit(ctx, s, key, fmt.Appendf(nil, "w%d r%d", w, r), expiry, deleted.Load())
			}
			return nil
		})
		for _, err := range errs {
			t.Error(err)
		}
		if !deleted.Load() {
			t.Fatal("no Delete ran; the case tests nothing")
		}
		mustNotFind(t, s, key)
	})

	t.Run("ConcurrentCommitsNeverOutliveARevoke", func(t *testing.T) {
		// Requests of a session keep saving it while an administrator
		// revokes it: once Revoke has returned, no save brings it back.
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		key := NewKeyFor(t, user)
		expiry := clk.Now().Add(longWindow)
		mustCreate(t, s, key, user, []byte("start"), expiry, noLimit)

		var (
			revoked atomic.Bool // set once some Revoke has returned
			ended   atomic.Int64
		)
		errs := race(func(w, r int) error {
			switch {
			case (w == 4 && r == raceRounds/3) || (w == 11 && r == raceRounds/2):
				n, err := s.Revoke(ctx, user, []string{key}, session.EndedByAdmin)
				if err != nil {
					return fmt.Errorf("Revoke: %w", err)
				}
				ended.Add(int64(n))
				revoked.Store(true)
			case (w+r)%3 == 1:
				return checkFind(ctx, s, key, revoked.Load())
			default:
				return checkCommit(ctx, s, key, fmt.Appendf(nil, "w%d r%d", w, r), expiry, revoked.Load())
			}
			return nil
		})
		for _, err := range errs {
			t.Error(err)
		}
		if n := ended.Load(); n != 1 {
			t.Fatalf("Revokes ended %d sessions in all, want 1", n)
		}
		mustNotFind(t, s, key)
		if r := mustEndReason(t, s, key); r != session.EndedByAdmin {
			t.Fatalf("EndReason = %q, want %q", r, session.EndedByAdmin)
		}
	})

	runOriginContract(t, build)
}

// Shape of the race cases: raceWorkers goroutines, raceRounds calls each.
const raceWorkers, raceRounds = 20, 25

// race runs op(worker, round) from raceWorkers goroutines released at once,
// and returns the errors op reported.
func race(op func(w, r int) error) []error {
	var (
		wg    sync.WaitGroup
		begin = make(chan struct{})
		mu    sync.Mutex
		errs  []error
	)
	for w := range raceWorkers {
		wg.Go(func() {
			<-begin
			for r := range raceRounds {
				if err := op(w, r); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	close(begin)
	wg.Wait()
	return errs
}

// checkFind finds key, which must not be found if ended was true before the
// call started.
func checkFind(ctx context.Context, s session.Store, key string, ended bool) error {
	_, found, err := s.FindCtx(ctx, key)
	switch {
	case err != nil:
		return fmt.Errorf("Find: %w", err)
	case ended && found:
		return errors.New("Find started after the session ended found it")
	}
	return nil
}

// checkCommit commits key, which must fail with ErrRevoked if ended was true
// before the call started.
func checkCommit(ctx context.Context, s session.Store, key string, b []byte, expiry time.Time, ended bool) error {
	err := s.CommitCtx(ctx, key, b, expiry)
	switch {
	case err != nil && !errors.Is(err, session.ErrRevoked):
		return fmt.Errorf("Commit: %w", err)
	case ended && err == nil:
		return errors.New("Commit started after the session ended succeeded")
	}
	return nil
}

// NewKey returns the store key of a fresh random token of a random user,
// derived as the Manager derives it (session.StoreKey). A store on one
// Redis takes it for any user; Redis Cluster needs NewKeyFor.
func NewKey(t testing.TB) string {
	t.Helper()
	return NewKeyFor(t, NewUserID(t))
}

// NewKeyFor returns the store key of a fresh random token of userID's: it
// carries the user's shard tag, as every key the Manager makes does.
func NewKeyFor(t testing.TB, userID int64) string {
	t.Helper()
	return session.StoreKey(NewTokenFor(t, userID))
}

// NewTokenFor returns a fresh random cookie token of userID's: the user's
// shard tag, a dot, and a token shaped like scs's.
func NewTokenFor(t testing.TB, userID int64) string {
	t.Helper()
	return session.CookieToken(session.UserTag(userID), NewToken(t))
}

// NewToken returns a fresh random token shaped like scs's: 32 random bytes,
// base64url without padding.
func NewToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random token: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewUserID returns a random positive user ID, so cases sharing a backend
// never share a user.
func NewUserID(t testing.TB) int64 {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random user ID: %v", err)
	}
	return int64(binary.BigEndian.Uint64(b[:])>>2) + 1
}

// newUserIDWithTag returns a random user ID whose shard tag is tag, so its
// sessions share a hash slot with those of the other users of that tag.
// About one try in session.ShardTags hits.
func newUserIDWithTag(t testing.TB, tag string) int64 {
	t.Helper()
	for {
		if id := NewUserID(t); session.UserTag(id) == tag {
			return id
		}
	}
}

func mustCreate(t *testing.T, s session.Store, key string, userID int64, b []byte, expiry time.Time, limit session.Limit) []string {
	t.Helper()
	evicted, err := s.Create(context.Background(), key, userID, b, expiry, limit, session.Origin{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return evicted
}

func mustListUser(t *testing.T, s session.Store, userID int64) []session.Entry {
	t.Helper()
	entries, err := s.ListUser(context.Background(), userID)
	if err != nil {
		t.Fatalf("ListUser: %v", err)
	}
	return entries
}

func mustListUserKeys(t *testing.T, s session.Store, userID int64) []string {
	t.Helper()
	keys, err := s.ListUserKeys(context.Background(), userID)
	if err != nil {
		t.Fatalf("ListUserKeys: %v", err)
	}
	return keys
}

func mustCountUsers(t *testing.T, s session.Store, userIDs []int64) map[int64]int {
	t.Helper()
	counts, err := s.CountUsers(context.Background(), userIDs)
	if err != nil {
		t.Fatalf("CountUsers: %v", err)
	}
	return counts
}

func mustRevoke(t *testing.T, s session.Store, userID int64, keys []string, reason session.EndReason) int {
	t.Helper()
	n, err := s.Revoke(context.Background(), userID, keys, reason)
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	return n
}

func mustRevokeUser(t *testing.T, s session.Store, userID int64, exceptKey string, reason session.EndReason) int {
	t.Helper()
	n, err := s.RevokeUser(context.Background(), userID, exceptKey, reason)
	if err != nil {
		t.Fatalf("RevokeUser: %v", err)
	}
	return n
}

func mustEndReason(t *testing.T, s session.Store, key string) session.EndReason {
	t.Helper()
	r, err := s.EndReason(context.Background(), key)
	if err != nil {
		t.Fatalf("EndReason: %v", err)
	}
	return r
}

func mustCount(t *testing.T, s session.Store) int {
	t.Helper()
	n, err := s.Count(context.Background())
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return n
}

func mustRecent(t *testing.T, s session.Store, offset, limit int) []session.Entry {
	t.Helper()
	entries, err := s.Recent(context.Background(), offset, limit)
	if err != nil {
		t.Fatalf("Recent: %v", err)
	}
	return entries
}

// entryKeys returns the keys of entries, in order.
func entryKeys(entries []session.Entry) []string {
	keys := make([]string, 0, len(entries))
	for _, e := range entries {
		keys = append(keys, e.Key)
	}
	return keys
}

// sortedKeys returns the keys of entries, sorted.
func sortedKeys(entries []session.Entry) []string {
	return sorted(entryKeys(entries)...)
}

// sorted returns a sorted copy of keys.
func sorted(keys ...string) []string {
	return slices.Sorted(slices.Values(keys))
}

// names shows keys as letters by their place in known (a, b, c...), so a
// failure reads "[b d]" rather than two hashes; unknown keys show as "?".
func names(keys, known []string) string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if i := slices.Index(known, k); i >= 0 && i < 26 {
			out = append(out, string(rune('a'+i)))
		} else {
			out = append(out, "?")
		}
	}
	return "[" + strings.Join(out, " ") + "]"
}

func mustCommit(t *testing.T, s session.Store, key string, b []byte, expiry time.Time) {
	t.Helper()
	if err := s.CommitCtx(context.Background(), key, b, expiry); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func mustFind(t *testing.T, s session.Store, key string) []byte {
	t.Helper()
	b, found, err := s.FindCtx(context.Background(), key)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if !found {
		t.Fatalf("Find: not found")
	}
	return b
}

func mustNotFind(t *testing.T, s session.Store, key string) {
	t.Helper()
	b, found, err := s.FindCtx(context.Background(), key)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if found {
		t.Fatalf("Find = %q, found; want not found", b)
	}
}

func mustDelete(t *testing.T, s session.Store, key string) {
	t.Helper()
	if err := s.DeleteCtx(context.Background(), key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// waitNotFound polls until key is not found, failing after pollFor.
func waitNotFound(t *testing.T, s session.Store, key string) {
	t.Helper()
	testkit.Eventually(t, pollFor, "session to expire", func() error {
		_, found, err := s.FindCtx(context.Background(), key)
		if err != nil {
			t.Fatalf("Find: %v", err)
		}
		if found {
			return errors.New("still found")
		}
		return nil
	})
}
