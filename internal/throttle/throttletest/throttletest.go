// Package throttletest holds the contract every throttle.Store must meet, as
// one suite each implementation runs against itself.
package throttletest

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/throttle"
)

// policy is the suite's usual policy: 3 free failures, then waits of 30 s,
// 1 min, 2 min and 4 min, forgotten 10 minutes after the last wait ends.
// Every wait is far longer than the suite runs, so a store whose backend
// expires keys in real time (Redis) still holds them when the suite's fake
// clock, not the real one, says a wait is over.
var policy = throttle.Policy{
	Limit:     3,
	Window:    10 * time.Minute,
	BaseDelay: 30 * time.Second,
	MaxDelay:  4 * time.Minute,
}

// Run checks the store newStore returns against the contract of
// throttle.Store. newStore must build a store on the clock now exactly as
// given: the suite advances it by hand. Each case uses keys of its own, so
// stores may share a backend, and the cases run in parallel.
func Run(t *testing.T, newStore func(t *testing.T, now func() time.Time) throttle.Store) {
	t.Helper()

	// build returns a store on a fresh fake clock and a key prefix no other
	// case uses.
	build := func(t *testing.T) (throttle.Store, *testkit.Clock, string) {
		t.Helper()
		t.Parallel()
		// On the millisecond, as stores count, so waits come out exact.
		clk := testkit.NewClock(time.Now().Truncate(time.Millisecond))
		return newStore(t, clk.Now), clk, NewKey(t) + ":"
	}

	t.Run("FailuresWithinTheLimitAreAllowed", func(t *testing.T) {
		s, _, prefix := build(t)
		key := prefix + "login:user:alice"
		expectCheck(t, s, key, policy, 0)
		for range policy.Limit {
			expectFail(t, s, key, policy, 0)
			expectCheck(t, s, key, policy, 0)
		}
	})

	t.Run("TheFailurePastTheLimitWaitsBaseDelay", func(t *testing.T) {
		s, clk, prefix := build(t)
		key := prefix + "login:user:alice"
		failN(t, s, key, policy, policy.Limit)
		expectFail(t, s, key, policy, policy.BaseDelay)
		expectCheck(t, s, key, policy, policy.BaseDelay)
		clk.Advance(10 * time.Second)
		expectCheck(t, s, key, policy, policy.BaseDelay-10*time.Second)
	})

	t.Run("FurtherFailuresDoubleTheWaitUpToMaxDelay", func(t *testing.T) {
		s, _, prefix := build(t)
		key := prefix + "login:user:alice"
		failN(t, s, key, policy, policy.Limit)
		for _, want := range []time.Duration{
			30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute, 4 * time.Minute,
		} {
			expectFail(t, s, key, policy, want)
		}
		expectCheck(t, s, key, policy, policy.MaxDelay)
	})

	t.Run("CheckAllowsOnceTheWaitIsOver", func(t *testing.T) {
		s, clk, prefix := build(t)
		key := prefix + "login:user:alice"
		failN(t, s, key, policy, policy.Limit+1)
		clk.Advance(policy.BaseDelay - time.Millisecond)
		expectCheck(t, s, key, policy, time.Millisecond)
		clk.Advance(time.Millisecond)
		expectCheck(t, s, key, policy, 0)
	})

	t.Run("AFailureAfterTheWaitStillCountsSoTheNextWaitDoubles", func(t *testing.T) {
		// A guesser who waits out each delay gains nothing: the count
		// carries on.
		s, clk, prefix := build(t)
		key := prefix + "login:user:alice"
		failN(t, s, key, policy, policy.Limit+1)
		clk.Advance(policy.BaseDelay)
		expectCheck(t, s, key, policy, 0)
		expectFail(t, s, key, policy, 2*policy.BaseDelay)
		clk.Advance(2 * policy.BaseDelay)
		expectCheck(t, s, key, policy, 0)
		expectFail(t, s, key, policy, 4*policy.BaseDelay)
	})

	t.Run("NoKeyIsEverLockedForLongerThanMaxDelay", func(t *testing.T) {
		s, clk, prefix := build(t)
		key := prefix + "login:user:alice"
		for i := range 200 {
			got, err := s.Fail(context.Background(), key, policy)
			if err != nil {
				t.Fatalf("Fail #%d: %v", i+1, err)
			}
			if got < 0 || got > policy.MaxDelay {
				t.Fatalf("Fail #%d = %s, want within [0, %s]", i+1, got, policy.MaxDelay)
			}
		}
		expectCheck(t, s, key, policy, policy.MaxDelay)
		clk.Advance(policy.MaxDelay)
		expectCheck(t, s, key, policy, 0)
	})

	t.Run("ResetForgetsFailuresAndLiftsTheWait", func(t *testing.T) {
		s, _, prefix := build(t)
		key := prefix + "login:user:alice"
		failN(t, s, key, policy, policy.Limit+2)
		expectCheck(t, s, key, policy, 2*policy.BaseDelay)
		expectReset(t, s, key)
		expectCheck(t, s, key, policy, 0)
		// The count starts again from zero.
		for range policy.Limit {
			expectFail(t, s, key, policy, 0)
		}
		expectFail(t, s, key, policy, policy.BaseDelay)
		// Resetting a key with no failures is fine.
		expectReset(t, s, prefix+"login:user:nobody")
	})

	t.Run("KeysAreIndependent", func(t *testing.T) {
		s, _, prefix := build(t)
		alice, bob := prefix+"login:user:alice", prefix+"login:user:bob"
		failN(t, s, alice, policy, policy.Limit+1)
		expectCheck(t, s, bob, policy, 0)
		expectFail(t, s, bob, policy, 0)
		expectReset(t, s, bob)
		expectCheck(t, s, alice, policy, policy.BaseDelay)
		// Stores normalise nothing: the caller lower-cases user names so
		// that case variants share a counter.
		expectCheck(t, s, prefix+"login:user:Alice", policy, 0)
	})

	t.Run("TheWindowForgetsOldFailures", func(t *testing.T) {
		s, clk, prefix := build(t)
		remembered, forgotten := prefix+"login:user:alice", prefix+"login:user:bob"
		failN(t, s, remembered, policy, policy.Limit)
		failN(t, s, forgotten, policy, policy.Limit)
		clk.Advance(policy.Window - time.Millisecond)
		expectFail(t, s, remembered, policy, policy.BaseDelay)
		clk.Advance(time.Millisecond)
		// bob's last failure is a whole Window ago: the count restarts.
		for range policy.Limit {
			expectFail(t, s, forgotten, policy, 0)
		}
		expectFail(t, s, forgotten, policy, policy.BaseDelay)
	})

	t.Run("TheWindowRunsFromTheEndOfTheWait", func(t *testing.T) {
		// Failures are remembered for a Window after the wait they started
		// ends, so a wait as long as the window does not wipe the count.
		s, clk, prefix := build(t)
		remembered, forgotten := prefix+"login:user:alice", prefix+"login:user:bob"
		failN(t, s, remembered, policy, policy.Limit+1)
		failN(t, s, forgotten, policy, policy.Limit+1)
		clk.Advance(policy.BaseDelay + policy.Window - time.Millisecond)
		expectFail(t, s, remembered, policy, 2*policy.BaseDelay)
		clk.Advance(time.Millisecond)
		expectCheck(t, s, forgotten, policy, 0)
		expectFail(t, s, forgotten, policy, 0)
	})

	t.Run("ConcurrentFailuresAreEachCountedOnce", func(t *testing.T) {
		// 50 failures at once, as from every replica: each gets its own
		// place in the count, so the waits they return are exactly those
		// of failures 1 to 50, and the next failure is the 51st.
		s, _, prefix := build(t)
		key := prefix + "login:user:alice"
		p := throttle.Policy{Limit: 40, Window: time.Hour, BaseDelay: time.Second, MaxDelay: time.Hour}
		const n = 50
		waits := make([]time.Duration, n)
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := range n {
			wg.Go(func() {
				w, err := s.Fail(context.Background(), key, p)
				if err != nil {
					t.Errorf("Fail: %v", err)
					failed.Add(1)
				}
				waits[i] = w
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.FailNow()
		}
		var want []time.Duration
		for i := 1; i <= n; i++ {
			if i <= p.Limit {
				want = append(want, 0)
			} else {
				want = append(want, time.Second<<(i-p.Limit-1))
			}
		}
		slices.Sort(waits)
		if !slices.Equal(waits, want) {
			t.Fatalf("50 concurrent Fails returned waits %v; want %v", waits, want)
		}
		expectFail(t, s, key, p, 1024*time.Second)
	})

	t.Run("AttemptCountsBeforeTheCheckAndWaitsPastTheLimit", func(t *testing.T) {
		// Sequentially, Limit+1 attempts get through (the last one starts
		// the wait, as the failure it is counted as does); then the key
		// waits, and a refused attempt counts nothing.
		s, clk, prefix := build(t)
		key := prefix + "login:user:alice"
		for range policy.Limit + 1 {
			expectAttempt(t, s, key, policy, 0)
		}
		expectAttempt(t, s, key, policy, policy.BaseDelay)
		expectAttempt(t, s, key, policy, policy.BaseDelay)
		clk.Advance(policy.BaseDelay)
		expectAttempt(t, s, key, policy, 0)
		// That was failure Limit+2: the wait doubles, no more.
		expectCheck(t, s, key, policy, 2*policy.BaseDelay)
	})

	t.Run("ConcurrentAttemptsNeverGetPastThePolicy", func(t *testing.T) {
		// 200 attempts at once, as an attacker with many connections to
		// every replica sends them: exactly Limit+1 get through.
		s, _, prefix := build(t)
		key := prefix + "login:user:alice"
		const n = 200
		var allowed, failed atomic.Int32
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				v, err := s.Attempt(context.Background(), key, policy)
				switch {
				case err != nil:
					t.Errorf("Attempt: %v", err)
					failed.Add(1)
				case v.Wait == 0:
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.FailNow()
		}
		if got, want := int(allowed.Load()), policy.Limit+1; got != want {
			t.Fatalf("%d of %d concurrent attempts got through; the policy allows %d", got, n, want)
		}
	})

	t.Run("AttemptCountsTheRefusalsOfEachWait", func(t *testing.T) {
		s, clk, prefix := build(t)
		key := prefix + "login:user:alice"
		for range policy.Limit + 1 {
			expectAttempt(t, s, key, policy, 0)
		}
		for want := 1; want <= 3; want++ {
			v, err := s.Attempt(context.Background(), key, policy)
			if err != nil || v.Wait != policy.BaseDelay || v.Refused != want {
				t.Fatalf("refusal %d: %+v, %v; want a wait of %v and Refused %d", want, v, err, policy.BaseDelay, want)
			}
		}
		// The next wait counts its own refusals from one.
		clk.Advance(policy.BaseDelay)
		expectAttempt(t, s, key, policy, 0)
		if v, err := s.Attempt(context.Background(), key, policy); err != nil || v.Refused != 1 {
			t.Fatalf("first refusal of the next wait: %+v, %v; want Refused 1", v, err)
		}
	})

	t.Run("ForgiveGivesBackOnlyTheAttemptThatSucceeded", func(t *testing.T) {
		s, _, prefix := build(t)
		key := prefix + "login:ip:203.0.113.9"
		for range policy.Limit {
			expectAttempt(t, s, key, policy, 0)
		}
		expectForgive(t, s, key, policy) // one of them succeeded
		// One more attempt than otherwise before the wait, not more.
		expectAttempt(t, s, key, policy, 0)
		expectAttempt(t, s, key, policy, 0)
		expectAttempt(t, s, key, policy, policy.BaseDelay)
	})

	t.Run("ForgiveLiftsAWaitTheCountNoLongerJustifies", func(t *testing.T) {
		// Limit-1 failures, then two attempts at once: the second starts a
		// wait; the first succeeds and is given back, so the count is at the
		// limit again and nothing justifies a wait.
		s, _, prefix := build(t)
		key := prefix + "login:ip:203.0.113.9"
		failN(t, s, key, policy, policy.Limit-1)
		expectAttempt(t, s, key, policy, 0)
		expectAttempt(t, s, key, policy, 0)
		expectCheck(t, s, key, policy, policy.BaseDelay)
		expectForgive(t, s, key, policy)
		expectCheck(t, s, key, policy, 0)
		// A key with nothing counted stays that way.
		other := prefix + "login:ip:198.51.100.1"
		expectForgive(t, s, other, policy)
		expectCheck(t, s, other, policy, 0)
		failN(t, s, other, policy, policy.Limit)
	})

	t.Run("AnInvalidPolicyIsRefused", func(t *testing.T) {
		s, _, prefix := build(t)
		key := prefix + "login:user:alice"
		for _, p := range []throttle.Policy{
			{},
			{Limit: -1, Window: time.Minute, BaseDelay: time.Second, MaxDelay: time.Minute},
			{Limit: 5, Window: time.Minute, BaseDelay: time.Minute, MaxDelay: time.Second},
		} {
			if _, err := s.Check(context.Background(), key, p); !errors.Is(err, throttle.ErrInvalidPolicy) {
				t.Errorf("Check with %+v: err = %v, want ErrInvalidPolicy", p, err)
			}
			if _, err := s.Fail(context.Background(), key, p); !errors.Is(err, throttle.ErrInvalidPolicy) {
				t.Errorf("Fail with %+v: err = %v, want ErrInvalidPolicy", p, err)
			}
			if _, err := s.Attempt(context.Background(), key, p); !errors.Is(err, throttle.ErrInvalidPolicy) {
				t.Errorf("Attempt with %+v: err = %v, want ErrInvalidPolicy", p, err)
			}
			if err := s.Forgive(context.Background(), key, p); !errors.Is(err, throttle.ErrInvalidPolicy) {
				t.Errorf("Forgive with %+v: err = %v, want ErrInvalidPolicy", p, err)
			}
		}
		// Nothing was recorded.
		failN(t, s, key, policy, policy.Limit)
	})

	t.Run("PingSucceeds", func(t *testing.T) {
		s, _, _ := build(t)
		if err := s.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// failN records n failures of key and checks each wait: none within
// p.Limit, then p.BaseDelay doubling up to p.MaxDelay.
func failN(t *testing.T, s throttle.Store, key string, p throttle.Policy, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		want := time.Duration(0)
		if i > p.Limit {
			want = min(p.BaseDelay<<(i-p.Limit-1), p.MaxDelay)
		}
		got, err := s.Fail(context.Background(), key, p)
		if err != nil {
			t.Fatalf("Fail #%d: %v", i, err)
		}
		if got != want {
			t.Fatalf("Fail #%d = %s, want %s", i, got, want)
		}
	}
}

func expectFail(t *testing.T, s throttle.Store, key string, p throttle.Policy, want time.Duration) {
	t.Helper()
	got, err := s.Fail(context.Background(), key, p)
	if err != nil {
		t.Fatalf("Fail: %v", err)
	}
	if got != want {
		t.Fatalf("Fail = %s, want %s", got, want)
	}
}

func expectAttempt(t *testing.T, s throttle.Store, key string, p throttle.Policy, want time.Duration) {
	t.Helper()
	got, err := s.Attempt(context.Background(), key, p)
	if err != nil {
		t.Fatalf("Attempt(%q): %v", key, err)
	}
	if got.Wait != want {
		t.Fatalf("Attempt(%q) waits %v, want %v", key, got.Wait, want)
	}
}

func expectForgive(t *testing.T, s throttle.Store, key string, p throttle.Policy) {
	t.Helper()
	if err := s.Forgive(context.Background(), key, p); err != nil {
		t.Fatalf("Forgive(%q): %v", key, err)
	}
}

func expectCheck(t *testing.T, s throttle.Store, key string, p throttle.Policy, want time.Duration) {
	t.Helper()
	got, err := s.Check(context.Background(), key, p)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got != want {
		t.Fatalf("Check = %s, want %s", got, want)
	}
}

func expectReset(t *testing.T, s throttle.Store, key string) {
	t.Helper()
	if err := s.Reset(context.Background(), key); err != nil {
		t.Fatalf("Reset: %v", err)
	}
}

// NewKey returns a random string to make keys no other test uses.
func NewKey(t testing.TB) string {
	t.Helper()
	return rand.Text()
}
