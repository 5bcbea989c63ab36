package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/testkit"
)

// runOriginContract checks what Create does with a session.Origin: a
// revocation that lands while a sign-in is in flight is never undone by the
// sign-in finishing. build is RunStoreContract's: a store on a fresh fake
// clock.
func runOriginContract(t *testing.T, build func(t *testing.T, opts session.Options) (session.Store, *testkit.Clock)) {
	t.Helper()
	ctx := context.Background()
	noLimit := session.Limit{}

	t.Run("CreateReplacingALiveSessionEndsItInTheSameStep", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		alice, bob := NewUserID(t), NewUserID(t)
		long := clk.Now().Add(longWindow)
		old, reissued := NewKeyFor(t, alice), NewKeyFor(t, alice)
		mustCreate(t, s, old, alice, []byte("old"), long, noLimit)
		mustCreateFrom(t, s, reissued, alice, []byte("reissued"), long, noLimit, session.Origin{Replaces: old})
		mustNotFind(t, s, old)
		if r := mustEndReason(t, s, old); r != session.EndedSignedOut {
			t.Errorf("EndReason of the replaced session = %q, want %q", r, session.EndedSignedOut)
		}
		if err := s.CommitCtx(ctx, old, []byte("old"), long); !errors.Is(err, session.ErrRevoked) {
			t.Errorf("Commit of the replaced session = %v, want ErrRevoked", err)
		}
		if got := entryKeys(mustListUser(t, s, alice)); !slices.Equal(got, []string{reissued}) {
			t.Fatalf("ListUser after the replacement = %s, want just the new session", names(got, []string{old, reissued}))
		}

		// A browser signed in as alice signs in as bob: alice's session ends.
		asBob := NewKeyFor(t, bob)
		mustCreateFrom(t, s, asBob, bob, []byte("bob's"), long, noLimit, session.Origin{Replaces: reissued})
		mustNotFind(t, s, reissued)
		if got := mustListUser(t, s, alice); len(got) != 0 {
			t.Errorf("alice lists %d sessions after her browser signed in as bob, want none", len(got))
		}
		if got := entryKeys(mustListUser(t, s, bob)); !slices.Equal(got, []string{asBob}) {
			t.Errorf("bob lists %d sessions, want just the new one", len(got))
		}
	})

	t.Run("CreateReplacingASessionThatIsNotLiveIsRevokedAndWritesNothing", func(t *testing.T) {
		// The in-flight request: it loaded its session, the session ended,
		// then the request signs in again on a fresh token (a password
		// change, a sign-in from a signed-in browser).
		t.Parallel()
		s, clk := build(t, session.Options{})
		long := clk.Now().Add(longWindow)
		cases := []struct {
			name string
			end  func(user int64, old, other string)
		}{
			{"signed out", func(_ int64, old, _ string) { mustDelete(t, s, old) }},
			{"revoked", func(user int64, old, _ string) {
				mustRevoke(t, s, user, []string{old}, session.EndedFromOtherDevice)
			}},
			{"revoked with the user's other sessions", func(user int64, _, other string) {
				mustRevokeUser(t, s, user, other, session.EndedFromOtherDevice)
			}},
			{"evicted", func(user int64, _, _ string) {
				mustCreate(t, s, NewKeyFor(t, user), user, []byte("v"), clk.Now().Add(longWindow), session.Limit{Max: 2, Policy: session.EvictOldest})
			}},
			{"never created", nil},
		}
		for _, tc := range cases {
			user := NewUserID(t)
			old, other := NewKeyFor(t, user), NewKeyFor(t, user)
			// Expiries from the moving clock, so old is the least recently
			// active and the one evicted.
			if tc.end != nil {
				mustCreate(t, s, old, user, []byte("old"), clk.Now().Add(longWindow), noLimit)
				clk.Advance(time.Millisecond)
			}
			mustCreate(t, s, other, user, []byte("other"), clk.Now().Add(longWindow), noLimit)
			if tc.end != nil {
				tc.end(user, old, other)
			}
			before := sortedKeys(mustListUser(t, s, user))
			// Authenticated after any revocation above: only the replaced
			// session's state can refuse it.
			clk.Advance(time.Millisecond)
			key := NewKeyFor(t, user)
			origin := session.Origin{Replaces: old, AuthenticatedAt: clk.Now()}
			if _, err := s.Create(ctx, key, user, []byte("new"), long, noLimit, origin); !errors.Is(err, session.ErrRevoked) {
				t.Errorf("%s: Create replacing it = %v, want ErrRevoked", tc.name, err)
			}
			mustNotFind(t, s, key)
			if r := mustEndReason(t, s, key); r != "" {
				t.Errorf("%s: EndReason of the refused key = %q, want none", tc.name, r)
			}
			if got := sortedKeys(mustListUser(t, s, user)); !slices.Equal(got, before) {
				t.Errorf("%s: the refused Create changed the user's sessions from %d to %d", tc.name, len(before), len(got))
			}
		}
	})

	t.Run("CreateReplacingAnExpiredSessionIsRevoked", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		old := NewKeyFor(t, user)
		mustCreate(t, s, old, user, []byte("old"), clk.Now().Add(shortWindow), noLimit)
		clk.Advance(shortWindow + time.Millisecond)
		waitNotFound(t, s, old)
		key := NewKeyFor(t, user)
		if _, err := s.Create(ctx, key, user, []byte("new"), clk.Now().Add(longWindow), noLimit, session.Origin{Replaces: old}); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Create replacing an expired session = %v, want ErrRevoked", err)
		}
		mustNotFind(t, s, key)
	})

	t.Run("ReplacedSessionMakesRoomUnderTheLimit", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user, carol := NewUserID(t), NewUserID(t)
		long := clk.Now().Add(longWindow)
		reject := session.Limit{Max: 1, Policy: session.Reject}
		old, reissued := NewKeyFor(t, user), NewKeyFor(t, user)
		mustCreate(t, s, old, user, []byte("v"), long, reject)
		mustCreateFrom(t, s, reissued, user, []byte("v"), long, reject, session.Origin{Replaces: old})

		// Refused at the limit: the replaced session (carol's) is untouched.
		carols, key := NewKeyFor(t, carol), NewKeyFor(t, user)
		mustCreate(t, s, carols, carol, []byte("v"), long, noLimit)
		if _, err := s.Create(ctx, key, user, []byte("v"), long, reject, session.Origin{Replaces: carols}); !errors.Is(err, session.ErrTooManySessions) {
			t.Fatalf("Create at the limit replacing another user's session = %v, want ErrTooManySessions", err)
		}
		mustNotFind(t, s, key)
		mustFind(t, s, carols)
		if r := mustEndReason(t, s, carols); r != "" {
			t.Fatalf("EndReason of the session a refused Create would have replaced = %q, want none", r)
		}

		// Under evict-oldest the replaced session is not evicted: it ends
		// as signed out, and nothing else goes.
		again := NewKeyFor(t, user)
		evicted := mustCreateFrom(t, s, again, user, []byte("v"), long, session.Limit{Max: 1, Policy: session.EvictOldest}, session.Origin{Replaces: reissued})
		if len(evicted) != 0 {
			t.Fatalf("Create replacing the user's only session evicted %d", len(evicted))
		}
		if r := mustEndReason(t, s, reissued); r != session.EndedSignedOut {
			t.Fatalf("EndReason of the replaced session = %q, want %q", r, session.EndedSignedOut)
		}
	})

	t.Run("CreateAuthenticatedBeforeAWholeUserRevocationIsRevoked", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		user, bob := NewUserID(t), NewUserID(t)
		long := clk.Now().Add(longWindow)
		t0 := clk.Now()
		clk.Advance(time.Second)
		t1 := clk.Now()
		mustRevokeUser(t, s, user, "", session.EndedDisabled)
		inMilli := time.UnixMilli(t1.UnixMilli()) // the start of t1's millisecond
		cases := []struct {
			name    string
			at      time.Time
			revoked bool
		}{
			{"when the sign-in began, before the revocation", t0, true},
			{"just before the revocation's millisecond", inMilli.Add(-time.Nanosecond), true},
			{"at the start of the revocation's millisecond", inMilli, false},
			{"at the revocation", t1, false},
			{"after the revocation", t1.Add(time.Millisecond), false},
			{"zero, meaning now", time.Time{}, false},
		}
		accepted := 0
		for _, tc := range cases {
			key := NewKeyFor(t, user)
			_, err := s.Create(ctx, key, user, []byte("v"), long, noLimit, session.Origin{AuthenticatedAt: tc.at})
			switch {
			case tc.revoked && !errors.Is(err, session.ErrRevoked):
				t.Errorf("Create authenticated %s = %v, want ErrRevoked", tc.name, err)
			case tc.revoked:
				mustNotFind(t, s, key)
			case err != nil:
				t.Errorf("Create authenticated %s = %v, want it stored", tc.name, err)
			default:
				mustFind(t, s, key)
				accepted++
			}
		}
		if n := len(mustListUser(t, s, user)); n != accepted {
			t.Errorf("ListUser = %d entries, want the %d accepted sessions", n, accepted)
		}
		// Another user's sign-ins are not affected.
		mustCreateFrom(t, s, NewKeyFor(t, bob), bob, []byte("v"), long, noLimit, session.Origin{AuthenticatedAt: t0})
	})

	t.Run("RevokeUserLetsTheExceptedSessionReissueItsToken", func(t *testing.T) {
		// A password change: every other session ends, and the device that
		// asked goes on with a fresh token.
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		long := clk.Now().Add(longWindow)
		t0 := clk.Now()
		keep, other := NewKeyFor(t, user), NewKeyFor(t, user)
		mustCreate(t, s, keep, user, []byte("v"), long, noLimit)
		mustCreate(t, s, other, user, []byte("v"), long, noLimit)
		clk.Advance(time.Second)
		if n := mustRevokeUser(t, s, user, keep, session.EndedPasswordChanged); n != 1 {
			t.Fatalf("RevokeUser = %d, want 1", n)
		}
		// From the kept session, but authenticated before: refused, and
		// the kept session is untouched.
		if _, err := s.Create(ctx, NewKeyFor(t, user), user, []byte("v"), long, noLimit, session.Origin{AuthenticatedAt: t0, Replaces: keep}); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Create authenticated before the revocation = %v, want ErrRevoked", err)
		}
		mustFind(t, s, keep)
		// The re-issue, on a clock that has not moved since the revocation.
		reissued := NewKeyFor(t, user)
		mustCreateFrom(t, s, reissued, user, []byte("v"), long, noLimit, session.Origin{AuthenticatedAt: clk.Now(), Replaces: keep})
		if got := entryKeys(mustListUser(t, s, user)); !slices.Equal(got, []string{reissued}) {
			t.Fatalf("ListUser after the re-issue = %s, want just the re-issued session", names(got, []string{keep, other, reissued}))
		}
	})

	t.Run("RevokeUsersStopsSignInsInFlightOfEveryListedUser", func(t *testing.T) {
		// Signing out everyone: sign-ins that authenticated before it, of
		// users with sessions and without, cannot finish afterwards; the
		// excepted session (the administrator's) re-issues its token.
		t.Parallel()
		s, clk := build(t, session.Options{})
		admin, alice, newcomer, unlisted := NewUserID(t), NewUserID(t), NewUserID(t), NewUserID(t)
		long := clk.Now().Add(longWindow)
		t0 := clk.Now()
		keep := NewKeyFor(t, admin)
		mustCreate(t, s, keep, admin, []byte("v"), long, noLimit)
		mustCreate(t, s, NewKeyFor(t, alice), alice, []byte("v"), long, noLimit)
		clk.Advance(time.Second)
		if n, err := s.RevokeUsers(ctx, []int64{admin, alice, newcomer}, keep, session.EndedEveryone); err != nil || n != 1 {
			t.Fatalf("RevokeUsers = %d, %v; want 1", n, err)
		}
		for _, user := range []int64{admin, alice, newcomer} {
			key := NewKeyFor(t, user)
			if _, err := s.Create(ctx, key, user, []byte("v"), long, noLimit, session.Origin{AuthenticatedAt: t0}); !errors.Is(err, session.ErrRevoked) {
				t.Errorf("Create authenticated before RevokeUsers = %v, want ErrRevoked", err)
			}
			mustNotFind(t, s, key)
		}
		mustCreateFrom(t, s, NewKeyFor(t, unlisted), unlisted, []byte("v"), long, noLimit, session.Origin{AuthenticatedAt: t0})
		reissued := NewKeyFor(t, admin)
		mustCreateFrom(t, s, reissued, admin, []byte("v"), long, noLimit, session.Origin{AuthenticatedAt: clk.Now(), Replaces: keep})
		if got := entryKeys(mustListUser(t, s, admin)); !slices.Equal(got, []string{reissued}) {
			t.Errorf("the administrator lists %s, want just the re-issued session", names(got, []string{keep, reissued}))
		}
	})

	t.Run("RevocationTimeOnlyMovesForward", func(t *testing.T) {
		// Two replicas revoke one user, the second on a clock a second
		// behind the first's: the later time still counts.
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		clk.Advance(2 * time.Second)
		t1 := clk.Now()
		mustRevokeUser(t, s, user, "", session.EndedByAdmin)
		clk.Set(t1.Add(-time.Second))
		mustRevokeUser(t, s, user, "", session.EndedDisabled)
		key := NewKeyFor(t, user)
		if _, err := s.Create(ctx, key, user, []byte("v"), clk.Now().Add(longWindow), noLimit, session.Origin{AuthenticatedAt: t1.Add(-time.Millisecond)}); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Create authenticated between the two revocations' times = %v, want ErrRevoked", err)
		}
		mustNotFind(t, s, key)
	})

	t.Run("RevocationTimeLapsesAfterTheLifetime", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{Lifetime: shortWindow})
		user := NewUserID(t)
		t0 := clk.Now()
		clk.Advance(time.Millisecond)
		mustRevokeUser(t, s, user, "", session.EndedDisabled)
		origin := session.Origin{AuthenticatedAt: t0}
		if _, err := s.Create(ctx, NewKeyFor(t, user), user, []byte("v"), clk.Now().Add(longWindow), noLimit, origin); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Create right after RevokeUser = %v, want ErrRevoked", err)
		}
		clk.Advance(shortWindow + time.Millisecond)
		testkit.Eventually(t, pollFor, "the revocation time to lapse", func() error {
			_, err := s.Create(ctx, NewKeyFor(t, user), user, []byte("v"), clk.Now().Add(longWindow), noLimit, origin)
			if err != nil && !errors.Is(err, session.ErrRevoked) {
				t.Fatalf("Create: %v", err)
			}
			return err
		})
	})

	t.Run("ConcurrentSignInsNeverOutliveAWholeUserRevocation", func(t *testing.T) {
		// The disable race: sign-ins that all began (authenticated) at t0
		// keep finishing while the account is disabled at t1: whatever was
		// created before RevokeUser is ended by it, and nothing after.
		t.Parallel()
		s, clk := build(t, session.Options{})
		user := NewUserID(t)
		long := clk.Now().Add(longWindow)
		t0 := clk.Now()
		clk.Advance(time.Second)
		keys := make([][]string, raceWorkers)
		for w := range keys {
			keys[w] = make([]string, raceRounds)
			for r := range keys[w] {
				keys[w][r] = NewKeyFor(t, user)
			}
		}
		var (
			revoked           atomic.Bool // set once RevokeUser has returned
			ended             atomic.Int64
			created, refused  atomic.Int64
			createdKeys       = make([][]bool, raceWorkers)
			revoker, revokeAt = 7, raceRounds / 2
		)
		for w := range createdKeys {
			createdKeys[w] = make([]bool, raceRounds)
		}
		errs := race(func(w, r int) error {
			if w == revoker && r == revokeAt {
				n, err := s.RevokeUser(ctx, user, "", session.EndedDisabled)
				if err != nil {
					return fmt.Errorf("RevokeUser: %w", err)
				}
				ended.Add(int64(n))
				revoked.Store(true)
				return nil
			}
			after := revoked.Load()
			_, err := s.Create(ctx, keys[w][r], user, []byte("v"), long, noLimit, session.Origin{AuthenticatedAt: t0})
			switch {
			case errors.Is(err, session.ErrRevoked):
				refused.Add(1)
			case err != nil:
				return fmt.Errorf("Create: %w", err)
			case after:
				return errors.New("a sign-in that authenticated before RevokeUser created a session after it returned")
			default:
				created.Add(1)
				createdKeys[w][r] = true
			}
			return nil
		})
		for _, err := range errs {
			t.Error(err)
		}
		// The revoker's own rounds fall on both sides of the revocation.
		if created.Load() == 0 || refused.Load() == 0 {
			t.Fatalf("%d sign-ins created and %d refused: the case did not race", created.Load(), refused.Load())
		}
		if n := len(mustListUser(t, s, user)); n != 0 {
			t.Fatalf("the user has %d sessions after the revocation, want none", n)
		}
		if ended.Load() != created.Load() {
			t.Errorf("RevokeUser ended %d sessions, but %d were created before it", ended.Load(), created.Load())
		}
		for w := range keys {
			for r, k := range keys[w] {
				mustNotFind(t, s, k)
				if createdKeys[w][r] {
					if reason := mustEndReason(t, s, k); reason != session.EndedDisabled {
						t.Errorf("EndReason of a session created before the revocation = %q, want %q", reason, session.EndedDisabled)
					}
				}
			}
		}
	})
}

func mustCreateFrom(t *testing.T, s session.Store, key string, userID int64, b []byte, expiry time.Time, limit session.Limit, origin session.Origin) []string {
	t.Helper()
	evicted, err := s.Create(context.Background(), key, userID, b, expiry, limit, origin)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return evicted
}
