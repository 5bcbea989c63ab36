package session

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// The races of the "Sign-in defences" review, items 5 and 6, played the
// way an attacker would: a request that is already in flight when the
// owner (or an administrator) revokes must not come out of it with a
// working session.

// raceUser is the user every rig signs in.
const raceUser = 7

// hold stops one request at a point in its handling until the test
// releases it. It stops only the first request to reach it once armed.
type hold struct {
	armed    atomic.Bool
	reached  chan struct{}
	release  chan struct{}
	released sync.Once
}

func newHold() *hold {
	return &hold{reached: make(chan struct{}), release: make(chan struct{})}
}

func (h *hold) stop() {
	if h.armed.CompareAndSwap(true, false) {
		h.reached <- struct{}{}
		<-h.release
	}
}

// let releases the held request; it may be called more than once.
func (h *hold) let() { h.released.Do(func() { close(h.release) }) }

// holdingStore stops Create at a hold: inside Login, after the token was
// renewed and the session encoded, just before the store's atomic step.
// With forgetOrigin it also drops the Origin, as a store without its checks
// would, to show that the scenarios reach the race.
type holdingStore struct {
	Store
	hold         *hold
	forgetOrigin bool
}

func (s holdingStore) Create(ctx context.Context, key string, userID int64, data []byte, expiry time.Time, limit Limit, origin Origin) ([]string, error) {
	s.hold.stop()
	if s.forgetOrigin {
		origin = Origin{}
	}
	return s.Store.Create(ctx, key, userID, data, expiry, limit, origin)
}

// raceRig is a Manager behind an HTTP server with the three ways a session
// is started: a password sign-in, a token re-issued by a signed-in session,
// and a password change (revoke the others, then re-issue). beforeLogin
// holds a request after it loaded its session (and, for a sign-in, after it
// began authenticating) but before Login; beforeCreate holds it inside
// Login. Login answers 409 for ErrRevoked.
type raceRig struct {
	srv          *httptest.Server
	m            *Manager
	store        Store // the real store, behind the hold
	clock        *testkit.Clock
	beforeLogin  *hold
	beforeCreate *hold
}

func newRaceRig(t *testing.T, store Store, clock *testkit.Clock, forgetOrigin bool) *raceRig {
	t.Helper()
	rig := &raceRig{store: store, clock: clock, beforeLogin: newHold(), beforeCreate: newHold()}
	rig.m = NewManager(ManagerOptions{
		Store:       holdingStore{Store: store, hold: rig.beforeCreate, forgetOrigin: forgetOrigin},
		IdleTimeout: 30 * time.Minute, Lifetime: 12 * time.Hour, ReplicaID: "r1", Now: clock.Now,
	})
	login := func(w http.ResponseWriter, r *http.Request, id Identity) {
		_, err := rig.m.Login(r.Context(), id, Client{IP: "127.0.0.1", Device: "Test"})
		switch {
		case errors.Is(err, ErrRevoked):
			http.Error(w, err.Error(), http.StatusConflict)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		// The sign-in begins: authenticated as of now, once the password
		// checks out.
		began := rig.clock.Now()
		rig.beforeLogin.stop()
		login(w, r, Identity{UserID: raceUser, Username: "alice", Role: "user", AuthenticatedAt: began})
	})
	mux.HandleFunc("POST /reissue", func(w http.ResponseWriter, r *http.Request) {
		info, ok := rig.m.Current(r.Context())
		if !ok {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		rig.beforeLogin.stop()
		id := info.Identity
		id.AuthenticatedAt = rig.clock.Now() // right before Login, as the account layer does
		login(w, r, id)
	})
	mux.HandleFunc("POST /change-password", func(w http.ResponseWriter, r *http.Request) {
		info, ok := rig.m.Current(r.Context())
		if !ok {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		if _, err := rig.m.RevokeOthers(r.Context(), EndedPasswordChanged); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		id := info.Identity
		id.AuthenticatedAt = rig.clock.Now()
		login(w, r, id)
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		if info, ok := rig.m.Current(r.Context()); ok {
			io.WriteString(w, info.Username)
		}
	})
	onErr := func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
	rig.srv = httptest.NewServer(rig.m.LoadAndSave(onErr)(mux))
	t.Cleanup(rig.srv.Close)
	return rig
}

// do sends a request with cookie (nil for none) and returns the response,
// its body read.
func (rig *raceRig) do(t *testing.T, method, path string, cookie *http.Cookie) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, rig.srv.URL+path, nil)
	if err != nil {
		t.Error(err)
		return nil, ""
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return nil, ""
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// sessionCookie returns the session cookie res sets, or nil.
func sessionCookie(res *http.Response) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == InsecureCookieName && c.Value != "" {
			return c
		}
	}
	return nil
}

// login signs alice in on a fresh browser and returns its session cookie.
func (rig *raceRig) login(t *testing.T) *http.Cookie {
	t.Helper()
	res, body := rig.do(t, http.MethodPost, "/login", nil)
	if res == nil || res.StatusCode != http.StatusOK || sessionCookie(res) == nil {
		t.Fatalf("sign-in: %v %q, want 200 with a session cookie", res, body)
	}
	return sessionCookie(res)
}

// whoami returns who the browser holding cookie is signed in as ("" for
// nobody).
func (rig *raceRig) whoami(t *testing.T, cookie *http.Cookie) string {
	t.Helper()
	_, body := rig.do(t, http.MethodGet, "/whoami", cookie)
	return body
}

// inFlight starts a request and waits until it stops at h; the returned
// function releases it and returns its response.
func (rig *raceRig) inFlight(t *testing.T, h *hold, method, path string, cookie *http.Cookie) func() (*http.Response, string) {
	t.Helper()
	type answer struct {
		res  *http.Response
		body string
	}
	done := make(chan answer, 1)
	// A test that stops early still lets the request go, or closing the
	// server would wait for it forever.
	t.Cleanup(h.let)
	h.armed.Store(true)
	go func() {
		res, body := rig.do(t, method, path, cookie)
		done <- answer{res, body}
	}()
	select {
	case <-h.reached:
	case a := <-done:
		t.Fatalf("%s %s finished without reaching the hold: %v %q", method, path, a.res, a.body)
	}
	return func() (*http.Response, string) {
		h.let()
		a := <-done
		if a.res == nil {
			t.FailNow()
		}
		return a.res, a.body
	}
}

// userKeys returns the keys of alice's live sessions, sorted.
func (rig *raceRig) userKeys(t *testing.T) []string {
	t.Helper()
	keys, err := rig.store.ListUserKeys(context.Background(), raceUser)
	if err != nil {
		t.Fatalf("ListUserKeys: %v", err)
	}
	return slices.Sorted(slices.Values(keys))
}

// forEachBackend runs f against a memory store and a Redis store, each on
// the rig's fake clock: the manager and the store share one clock here, as
// replicas with synchronised clocks do.
func forEachBackend(t *testing.T, f func(t *testing.T, newStore func(clock *testkit.Clock) Store)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		f(t, func(clock *testkit.Clock) Store {
			return NewMemoryStore(StoreOptions(30*time.Minute, 12*time.Hour, clock.Now))
		})
	})
	t.Run("redis", func(t *testing.T) {
		rs := testsvc.StartRedis(t)
		pool, err := redisx.NewPool(rs.URL, redisx.DefaultPoolOptions())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pool.Close() })
		f(t, func(clock *testkit.Clock) Store {
			// Every rig signs in the same user: start from an empty Redis.
			if _, err := rs.Conn(t).Do("FLUSHDB"); err != nil {
				t.Fatal(err)
			}
			return NewRedisStore(pool, StoreOptions(30*time.Minute, 12*time.Hour, clock.Now))
		})
	})
}

// TestLoginFromARevokedSessionCreatesNothing: an attacker holding one of
// alice's sessions starts a request that signs in again on a fresh token (a
// password change does that); while it is in flight, alice ends the
// attacker's session. When the request goes on, Login must fail with
// ErrRevoked and leave nothing: no new session, no cookie.
func TestLoginFromARevokedSessionCreatesNothing(t *testing.T) {
	revocations := []struct {
		name   string
		revoke func(t *testing.T, rig *raceRig, owner, attacker *http.Cookie)
	}{
		{"all other sessions", func(t *testing.T, rig *raceRig, owner, _ *http.Cookie) {
			if n, err := rig.store.RevokeUser(context.Background(), raceUser, StoreKey(owner.Value), EndedFromOtherDevice); err != nil || n != 1 {
				t.Fatalf("RevokeUser = %d, %v; want the attacker's session ended", n, err)
			}
		}},
		{"that one session", func(t *testing.T, rig *raceRig, _, attacker *http.Cookie) {
			ended, err := rig.m.Revoke(context.Background(), raceUser, publicIDFor(raceUser, StoreKey(attacker.Value)), EndedFromOtherDevice)
			if err != nil || !ended {
				t.Fatalf("Revoke = %v, %v; want the attacker's session ended", ended, err)
			}
		}},
	}
	forEachBackend(t, func(t *testing.T, newStore func(*testkit.Clock) Store) {
		for _, where := range []string{"before Login", "inside Login"} {
			for _, rv := range revocations {
				t.Run("held "+where+", then "+rv.name+" revoked", func(t *testing.T) {
					clock := testkit.NewClock(time.Now())
					rig := newRaceRig(t, newStore(clock), clock, false)
					owner, attacker := rig.login(t), rig.login(t)
					h := rig.beforeLogin
					if where == "inside Login" {
						h = rig.beforeCreate
					}

					finish := rig.inFlight(t, h, http.MethodPost, "/reissue", attacker)
					if where == "inside Login" {
						// Login has renewed the token but not yet deleted
						// the old session: Create does that, atomically.
						if _, found, err := rig.store.FindCtx(context.Background(), StoreKey(attacker.Value)); err != nil || !found {
							t.Errorf("the attacker's session is gone (%v) before Login's Create ran", err)
						}
					}
					clock.Advance(time.Second)
					rv.revoke(t, rig, owner, attacker)
					res, body := finish()

					if res.StatusCode != http.StatusConflict {
						t.Errorf("re-issue from a revoked session: %d %q, want 409 (ErrRevoked)", res.StatusCode, body)
					}
					if sc := res.Header.Values("Set-Cookie"); len(sc) != 0 {
						t.Errorf("the refused re-issue set cookies %q", sc)
					}
					if got, want := rig.userKeys(t), []string{StoreKey(owner.Value)}; !slices.Equal(got, want) {
						t.Errorf("alice has %d sessions after the refused re-issue, want just the owner's", len(got))
					}
					if who := rig.whoami(t, attacker); who != "" {
						t.Errorf("the attacker's cookie is signed in as %q", who)
					}
					if r, err := rig.store.EndReason(context.Background(), StoreKey(attacker.Value)); err != nil || r != EndedFromOtherDevice {
						t.Errorf("EndReason of the attacker's session = %q, %v; want %q", r, err, EndedFromOtherDevice)
					}
					if who := rig.whoami(t, owner); who != "alice" {
						t.Errorf("the owner's cookie is signed in as %q, want alice", who)
					}
				})
			}
		}

		// The same race against a store that ignores the Origin must hand
		// the attacker a session, or the cases above prove nothing.
		for _, rv := range revocations {
			t.Run("control: without the checks, "+rv.name+" revoked, the attacker keeps a session", func(t *testing.T) {
				clock := testkit.NewClock(time.Now())
				rig := newRaceRig(t, newStore(clock), clock, true)
				owner, attacker := rig.login(t), rig.login(t)
				finish := rig.inFlight(t, rig.beforeCreate, http.MethodPost, "/reissue", attacker)
				clock.Advance(time.Second)
				rv.revoke(t, rig, owner, attacker)
				res, body := finish()
				fresh := sessionCookie(res)
				if res.StatusCode != http.StatusOK || fresh == nil {
					t.Fatalf("re-issue through a store that forgets the Origin: %d %q, want 200 with a cookie", res.StatusCode, body)
				}
				if who := rig.whoami(t, fresh); who != "alice" {
					t.Fatalf("the attacker's new cookie is signed in as %q, want alice: the race was not reached", who)
				}
			})
		}
	})
}

// TestSignInInFlightWhenTheAccountIsDisabledCreatesNothing: alice's
// sign-in has begun (the password is being checked) when an administrator
// disables her account and ends her sessions. When the sign-in goes on,
// Login must fail with ErrRevoked: the store knows the revocation came after
// the sign-in began.
func TestSignInInFlightWhenTheAccountIsDisabledCreatesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newStore func(*testkit.Clock) Store) {
		for _, where := range []string{"before Login", "inside Login"} {
			t.Run("held "+where, func(t *testing.T) {
				clock := testkit.NewClock(time.Now())
				rig := newRaceRig(t, newStore(clock), clock, false)
				earlier := rig.login(t)
				h := rig.beforeLogin
				if where == "inside Login" {
					h = rig.beforeCreate
				}

				finish := rig.inFlight(t, h, http.MethodPost, "/login", nil)
				clock.Advance(time.Second)
				if n, err := rig.m.RevokeUser(context.Background(), raceUser, EndedDisabled); err != nil || n != 1 {
					t.Fatalf("RevokeUser = %d, %v; want the earlier session ended", n, err)
				}
				res, body := finish()

				if res.StatusCode != http.StatusConflict {
					t.Errorf("sign-in that began before the account was disabled: %d %q, want 409 (ErrRevoked)", res.StatusCode, body)
				}
				if sc := res.Header.Values("Set-Cookie"); len(sc) != 0 {
					t.Errorf("the refused sign-in set cookies %q", sc)
				}
				if got := rig.userKeys(t); len(got) != 0 {
					t.Errorf("alice has %d sessions after her account was disabled, want none", len(got))
				}
				if who := rig.whoami(t, earlier); who != "" {
					t.Errorf("the earlier session is signed in as %q", who)
				}
				// A sign-in that begins after the revocation is not refused
				// by it (the account layer refuses a disabled account).
				clock.Advance(time.Millisecond)
				if who := rig.whoami(t, rig.login(t)); who != "alice" {
					t.Errorf("a sign-in begun after the revocation is signed in as %q, want alice", who)
				}
			})
		}

		// A store that ignores the Origin lets the in-flight sign-in
		// through, or the cases above prove nothing.
		t.Run("control: without the check the sign-in keeps a session", func(t *testing.T) {
			clock := testkit.NewClock(time.Now())
			rig := newRaceRig(t, newStore(clock), clock, true)
			finish := rig.inFlight(t, rig.beforeCreate, http.MethodPost, "/login", nil)
			clock.Advance(time.Second)
			if _, err := rig.m.RevokeUser(context.Background(), raceUser, EndedDisabled); err != nil {
				t.Fatalf("RevokeUser: %v", err)
			}
			res, body := finish()
			if fresh := sessionCookie(res); res.StatusCode != http.StatusOK || fresh == nil || rig.whoami(t, fresh) != "alice" {
				t.Fatalf("sign-in through a store that forgets the Origin: %d %q, want 200 signed in as alice: the race was not reached", res.StatusCode, body)
			}
		})
	})
}

// TestPasswordChangeReissuesTheTokenAfterEndingTheOthers: the device that
// changes the password ends every other session and goes on with a fresh
// token in the same request, on a clock that has not moved since the
// revocation.
func TestPasswordChangeReissuesTheTokenAfterEndingTheOthers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newStore func(*testkit.Clock) Store) {
		clock := testkit.NewClock(time.Now())
		rig := newRaceRig(t, newStore(clock), clock, false)
		mine, other := rig.login(t), rig.login(t)

		res, body := rig.do(t, http.MethodPost, "/change-password", mine)
		fresh := sessionCookie(res)
		if res.StatusCode != http.StatusOK || fresh == nil {
			t.Fatalf("password change: %d %q, want 200 with a new session cookie", res.StatusCode, body)
		}
		if fresh.Value == mine.Value {
			t.Fatal("the password change kept the token")
		}
		if got, want := rig.userKeys(t), []string{StoreKey(fresh.Value)}; !slices.Equal(got, want) {
			t.Errorf("alice has %d sessions after the password change, want just the re-issued one", len(got))
		}
		if who := rig.whoami(t, fresh); who != "alice" {
			t.Errorf("the re-issued cookie is signed in as %q, want alice", who)
		}
		for name, c := range map[string]*http.Cookie{"the old token": mine, "the other device": other} {
			if who := rig.whoami(t, c); who != "" {
				t.Errorf("%s is still signed in as %q", name, who)
			}
		}
		if r, err := rig.store.EndReason(context.Background(), StoreKey(mine.Value)); err != nil || r != EndedSignedOut {
			t.Errorf("EndReason of the replaced token = %q, %v; want %q", r, err, EndedSignedOut)
		}
		if r, err := rig.store.EndReason(context.Background(), StoreKey(other.Value)); err != nil || r != EndedPasswordChanged {
			t.Errorf("EndReason of the other device = %q, %v; want %q", r, err, EndedPasswordChanged)
		}
	})
}

// TestLoginReplacingASessionIsOneStoreCall: the old session ends inside
// Create's script; RenewToken does not delete it in a call of its own first.
func TestLoginReplacingASessionIsOneStoreCall(t *testing.T) {
	rs := testsvc.StartRedis(t)
	pool, sent := testsvc.CountingPool(t, rs.URL)
	clock := testkit.NewClock(time.Now())
	rig := newRaceRig(t, NewRedisStore(pool, StoreOptions(30*time.Minute, 12*time.Hour, clock.Now)), clock, false)
	rig.login(t)
	cookie := rig.login(t) // and the scripts are loaded

	before := sent.Load()
	res, body := rig.do(t, http.MethodPost, "/reissue", cookie)
	if res.StatusCode != http.StatusOK || sessionCookie(res) == nil {
		t.Fatalf("re-issue: %d %q, want 200 with a new session cookie", res.StatusCode, body)
	}
	if n := sent.Load() - before; n != 2 {
		t.Errorf("a re-issue sent %d commands, want 2: the load's GET and Create's script", n)
	}
}
