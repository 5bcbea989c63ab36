// Package sessiontest holds the contract every session.Store must meet, as
// one suite each implementation runs against itself.
package sessiontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/session"
)

// Timing of the expiry cases. Stores that expire entries on their own clock
// (Redis) need these to pass for real, so they are short; the suite polls for
// the outcome rather than sleeping.
const (
	shortWindow = 250 * time.Millisecond
	longWindow  = time.Hour
	pollFor     = 5 * time.Second
	pollEvery   = 10 * time.Millisecond
)

// RunStoreContract checks the store newStore returns against the contract of
// session.Store. newStore must build a store on opts exactly as given: the
// suite sets opts.Now to a clock it advances, and keys it uses are random, so
// stores may share a backend between cases.
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

	// build returns a store on a fresh fake clock, with an hour's idle
	// timeout and lifetime unless set.
	build := func(t *testing.T, opts session.Options) (session.Store, *Clock) {
		t.Helper()
		clk := NewClock(time.Now())
		if opts.IdleTimeout == 0 {
			opts.IdleTimeout = longWindow
		}
		if opts.Lifetime == 0 {
			opts.Lifetime = longWindow
		}
		opts.Now = clk.Now
		return newStore(t, opts), clk
	}

	t.Run("CommitThenFindReturnsTheSameBytes", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		key := NewKey(t)
		want := []byte("data\x00with\xffbinary")
		mustCommit(t, s, key, want, clk.Now().Add(longWindow))
		got := mustFind(t, s, key)
		if !bytes.Equal(got, want) {
			t.Fatalf("Find = %q, want %q", got, want)
		}
		got[0] = 'X' // the caller owns what it was given
		if again := mustFind(t, s, key); !bytes.Equal(again, want) {
			t.Fatalf("Find after changing the returned slice = %q, want %q", again, want)
		}
	})

	t.Run("NonContextMethodsWork", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		key := NewKey(t)
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
		key, other := NewKey(t), NewKey(t)
		mustCommit(t, s, key, []byte("v"), clk.Now().Add(longWindow))
		mustCommit(t, s, other, []byte("w"), clk.Now().Add(longWindow))
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

	t.Run("CommitAfterDeleteIsRevokedAndWritesNothing", func(t *testing.T) {
		// The in-flight request: it loaded the session, the session was
		// revoked, then the request saves what it loaded.
		t.Parallel()
		s, clk := build(t, session.Options{})
		key := NewKey(t)
		mustCommit(t, s, key, []byte("signed in"), clk.Now().Add(longWindow))
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
		keys := []string{NewKey(t), NewKey(t), NewKey(t)}
		mustCommit(t, s, keys[0], []byte("v"), clk.Now().Add(longWindow))
		for _, k := range keys {
			mustDelete(t, s, k)
		}
		for _, k := range keys {
			mustNotFind(t, s, k)
			_ = s.CommitCtx(ctx, k, []byte("again"), clk.Now().Add(longWindow))
			mustNotFind(t, s, k)
		}
	})

	t.Run("CommitOfExistingKeyUpdatesIt", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		key := NewKey(t)
		mustCommit(t, s, key, []byte("first"), clk.Now().Add(longWindow))
		mustCommit(t, s, key, []byte("second"), clk.Now().Add(longWindow))
		if got := mustFind(t, s, key); string(got) != "second" {
			t.Fatalf("Find = %q, want second", got)
		}
	})

	t.Run("CommitWithPastExpiryRemovesTheSession", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		key := NewKey(t)
		mustCommit(t, s, key, []byte("v"), clk.Now().Add(longWindow))
		mustCommit(t, s, key, []byte("v"), clk.Now().Add(-time.Second))
		mustNotFind(t, s, key)
		mustCommit(t, s, key, []byte("v"), clk.Now())
		mustNotFind(t, s, key)
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
			key := NewKey(t)
			window := min(tc.idleTimeout, tc.scsExpiry)
			start := time.Now()
			mustCommit(t, s, key, []byte("v"), clk.Now().Add(tc.scsExpiry))

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
		key := NewKey(t)
		mustCommit(t, s, key, []byte("v"), clk.Now().Add(longWindow))
		clk.Advance(shortWindow / 2)
		start := time.Now()
		mustCommit(t, s, key, []byte("v2"), clk.Now().Add(longWindow))
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
		key := NewKey(t)
		mustDelete(t, s, key)
		if err := s.CommitCtx(ctx, key, []byte("v"), clk.Now().Add(longWindow)); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("Commit right after Delete = %v, want ErrRevoked", err)
		}
		clk.Advance(shortWindow + time.Millisecond)
		poll(t, "tombstone to expire", func() bool {
			err := s.CommitCtx(ctx, key, []byte("v"), clk.Now().Add(longWindow))
			if err != nil && !errors.Is(err, session.ErrRevoked) {
				t.Fatalf("Commit: %v", err)
			}
			return err == nil
		})
		if got := mustFind(t, s, key); string(got) != "v" {
			t.Fatalf("Find = %q, want v", got)
		}
	})

	t.Run("ConcurrentCommitsNeverOutliveADelete", func(t *testing.T) {
		t.Parallel()
		s, clk := build(t, session.Options{})
		key := NewKey(t)
		expiry := clk.Now().Add(longWindow)
		mustCommit(t, s, key, []byte("start"), expiry)

		const workers, rounds = 20, 25
		var (
			deleted atomic.Bool // set once some Delete has returned
			wg      sync.WaitGroup
			begin   = make(chan struct{})
			errs    = make(chan error, workers*rounds)
		)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-begin
				for r := range rounds {
					switch (w + r) % 7 {
					case 3:
						if err := s.DeleteCtx(ctx, key); err != nil {
							errs <- fmt.Errorf("Delete: %w", err)
							continue
						}
						deleted.Store(true)
					case 1, 5:
						after := deleted.Load()
						_, found, err := s.FindCtx(ctx, key)
						if err != nil {
							errs <- fmt.Errorf("Find: %w", err)
						} else if after && found {
							errs <- errors.New("Find started after a Delete returned found the session")
						}
					default:
						after := deleted.Load()
						err := s.CommitCtx(ctx, key, fmt.Appendf(nil, "w%d r%d", w, r), expiry)
						switch {
						case err != nil && !errors.Is(err, session.ErrRevoked):
							errs <- fmt.Errorf("Commit: %w", err)
						case after && err == nil:
							errs <- errors.New("Commit started after a Delete returned succeeded")
						}
					}
				}
			}()
		}
		close(begin)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if !deleted.Load() {
			t.Fatal("no Delete ran; the case tests nothing")
		}
		mustNotFind(t, s, key)
	})
}

// Clock is a fake clock, safe for concurrent use, that moves only when told.
type Clock struct {
	base   time.Time
	offset atomic.Int64
}

// NewClock returns a Clock stopped at start.
func NewClock(start time.Time) *Clock {
	return &Clock{base: start}
}

// Now returns the clock's time; use it as Options.Now.
func (c *Clock) Now() time.Time {
	return c.base.Add(time.Duration(c.offset.Load()))
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.offset.Add(int64(d))
}

// NewKey returns a store key made as scs makes one with HashTokenInStore:
// base64url of the SHA-256 of a fresh random token.
func NewKey(t testing.TB) string {
	t.Helper()
	return HashToken(NewToken(t))
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

// HashToken returns the store key scs derives from token when
// HashTokenInStore is set.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
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
	poll(t, "session to expire", func() bool {
		_, found, err := s.FindCtx(context.Background(), key)
		if err != nil {
			t.Fatalf("Find: %v", err)
		}
		return !found
	})
}

// poll calls done until it reports true, failing t after pollFor.
func poll(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollFor)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %s for %s", pollFor, what)
		}
		<-tick.C
	}
}
