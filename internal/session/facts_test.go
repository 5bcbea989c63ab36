package session

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// What a session records about how its user signed in: the method, the
// last proof of sign-in (sudo mode) and whether it must enrol a second
// factor first; set by Login, changed by MarkReauthenticated and
// ClearMustEnrol, saved with the response.

// factsUser is the user every factsRig signs in.
const factsUser = 9

// factsView is what GET /facts reports of the request's session, as
// Current, ListUser and Lookup each see it.
type factsView struct {
	SignedIn          bool
	Method            string
	MustEnrol         bool
	Created           time.Time
	ReauthenticatedAt time.Time
	ListedMethod      string
	ListedMustEnrol   bool
	LookupMethod      string
}

// factsRig is a Manager behind an HTTP server whose handlers sign in with
// a method and must-enrol, mark the session reauthenticated and clear
// must-enrol. hold, once armed, stops POST /reauth after the mark and
// before the response is saved.
type factsRig struct {
	srv   *httptest.Server
	m     *Manager
	store Store
	clock *testkit.Clock
	hold  *hold
}

func newFactsRig(t *testing.T, store Store, clock *testkit.Clock) *factsRig {
	t.Helper()
	rig := &factsRig{store: store, clock: clock, hold: newHold()}
	t.Cleanup(rig.hold.let)
	rig.m = NewManager(ManagerOptions{Store: store, IdleTimeout: 30 * time.Minute, Lifetime: 12 * time.Hour, ReplicaID: "r1", Now: clock.Now})
	fail := func(w http.ResponseWriter, err error) { http.Error(w, err.Error(), http.StatusConflict) }
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		id := Identity{UserID: factsUser, Username: "carol", Role: "user",
			Method: r.FormValue("method"), MustEnrol: r.FormValue("enrol") == "1"}
		if _, err := rig.m.Login(r.Context(), id, Client{IP: "127.0.0.1", Device: "Test"}); err != nil {
			fail(w, err)
			return
		}
		// Enrolling during the sign-in request itself must be saved too.
		if r.FormValue("enrol-now") == "1" {
			if err := rig.m.ClearMustEnrol(r.Context()); err != nil {
				fail(w, err)
			}
		}
	})
	mux.HandleFunc("POST /reauth", func(w http.ResponseWriter, r *http.Request) {
		if err := rig.m.MarkReauthenticated(r.Context()); err != nil {
			fail(w, err)
			return
		}
		rig.hold.stop()
	})
	mux.HandleFunc("POST /enrolled", func(w http.ResponseWriter, r *http.Request) {
		if err := rig.m.ClearMustEnrol(r.Context()); err != nil {
			fail(w, err)
		}
	})
	mux.HandleFunc("GET /facts", func(w http.ResponseWriter, r *http.Request) {
		var v factsView
		if info, ok := rig.m.Current(r.Context()); ok {
			v = factsView{SignedIn: true, Method: info.Method, MustEnrol: info.MustEnrol,
				Created: info.Created, ReauthenticatedAt: info.ReauthenticatedAt}
			recs, err := rig.m.ListUser(r.Context(), factsUser)
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			for _, rec := range recs {
				if rec.Current {
					v.ListedMethod, v.ListedMustEnrol = rec.Method, rec.MustEnrol
				}
			}
			key, _ := rig.m.CurrentKey(r.Context())
			rec, _, err := rig.m.Lookup(r.Context(), key)
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			v.LookupMethod = rec.Method
		}
		json.NewEncoder(w).Encode(v)
	})
	onErr := func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
	rig.srv = httptest.NewServer(rig.m.LoadAndSave(onErr)(mux))
	t.Cleanup(rig.srv.Close)
	return rig
}

// do sends a request with cookie (nil for none) and returns the response
// with its body read.
func (rig *factsRig) do(t *testing.T, method, path string, cookie *http.Cookie) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, rig.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res, string(body)
}

// login signs factsUser in with form values and returns the cookie.
func (rig *factsRig) login(t *testing.T, form url.Values) *http.Cookie {
	t.Helper()
	res, body := rig.do(t, http.MethodPost, "/login?"+form.Encode(), nil)
	for _, c := range res.Cookies() {
		if c.Name == InsecureCookieName && c.Value != "" {
			return c
		}
	}
	t.Fatalf("login set no cookie: %d %s", res.StatusCode, body)
	return nil
}

// mustPost posts to path and fails unless the page answers 200.
func (rig *factsRig) mustPost(t *testing.T, path string, cookie *http.Cookie) {
	t.Helper()
	if res, body := rig.do(t, http.MethodPost, path, cookie); res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, res.StatusCode, body)
	}
}

// facts asks a fresh request what the session says.
func (rig *factsRig) facts(t *testing.T, cookie *http.Cookie) factsView {
	t.Helper()
	res, body := rig.do(t, http.MethodGet, "/facts", cookie)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /facts: %d %s", res.StatusCode, body)
	}
	var v factsView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET /facts: %v in %q", err, body)
	}
	return v
}

// forEachStore runs scenario against the memory store and a Redis store of
// its own, each with a fresh Manager clock. The Redis store expires by the
// real clock, as in production; the scenarios move the Manager's clock by
// minutes, well inside the lifetime.
func forEachStore(t *testing.T, scenario func(t *testing.T, store Store, clock *testkit.Clock)) {
	t.Run("memory", func(t *testing.T) {
		clock := testkit.NewClock(time.Now())
		scenario(t, NewMemoryStore(StoreOptions(30*time.Minute, 12*time.Hour, clock.Now)), clock)
	})
	t.Run("redis", func(t *testing.T) {
		rs := testsvc.StartRedis(t)
		pool, err := redisx.NewPool(rs.URL, redisx.DefaultPoolOptions())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pool.Close() })
		scenario(t, NewRedisStore(pool, StoreOptions(30*time.Minute, 12*time.Hour, nil)), testkit.NewClock(time.Now()))
	})
}

func TestLoginRecordsMethodAndMustEnrol(t *testing.T) {
	forEachStore(t, func(t *testing.T, store Store, clock *testkit.Clock) {
		rig := newFactsRig(t, store, clock)
		got := rig.facts(t, rig.login(t, url.Values{"method": {"password+totp"}, "enrol": {"1"}}))
		want := factsView{
			SignedIn: true, Method: "password+totp", MustEnrol: true,
			Created: got.Created, ReauthenticatedAt: got.Created,
			ListedMethod: "password+totp", ListedMustEnrol: true, LookupMethod: "password+totp",
		}
		if !got.Created.Equal(clock.Now().Truncate(time.Millisecond)) || got != want {
			t.Errorf("after sign-in: %+v\nwant %+v, created now (%v), the sign-in its last proof", got, want, clock.Now())
		}

		plain := rig.facts(t, rig.login(t, url.Values{"method": {"passkey"}}))
		if plain.Method != "passkey" || plain.MustEnrol || plain.ListedMustEnrol {
			t.Errorf("passkey sign-in without must-enrol: %+v", plain)
		}
	})
}

func TestMarkReauthenticatedIsSavedWithTheResponse(t *testing.T) {
	forEachStore(t, func(t *testing.T, store Store, clock *testkit.Clock) {
		rig := newFactsRig(t, store, clock)
		// After 30 s the mark is the request's only change; after 5 minutes
		// the last-seen refresh is due as well, and the mark must not be
		// saved as a mere refresh.
		for _, after := range []time.Duration{30 * time.Second, 5 * time.Minute} {
			cookie := rig.login(t, url.Values{"method": {"password"}})
			signedIn := clock.Now().Truncate(time.Millisecond)
			clock.Advance(after)
			rig.mustPost(t, "/reauth", cookie)
			got := rig.facts(t, cookie)
			if want := signedIn.Add(after); !got.ReauthenticatedAt.Equal(want) || !got.Created.Equal(signedIn) {
				t.Errorf("%v after sign-in: reauthenticated at %v (created %v), want %v (created %v)",
					after, got.ReauthenticatedAt, got.Created, want, signedIn)
			}
			if got.Method != "password" {
				t.Errorf("%v after sign-in: the mark changed the method to %q", after, got.Method)
			}
		}
	})
}

func TestClearMustEnrolIsSavedWithTheResponse(t *testing.T) {
	forEachStore(t, func(t *testing.T, store Store, clock *testkit.Clock) {
		rig := newFactsRig(t, store, clock)
		cookie := rig.login(t, url.Values{"method": {"password"}, "enrol": {"1"}})
		clock.Advance(10 * time.Second)
		rig.mustPost(t, "/enrolled", cookie)
		if got := rig.facts(t, cookie); !got.SignedIn || got.MustEnrol || got.ListedMustEnrol {
			t.Errorf("after enrolling: %+v, want signed in without must-enrol", got)
		}
		// Enrolled in the very request that signed in.
		cookie = rig.login(t, url.Values{"method": {"password"}, "enrol": {"1"}, "enrol-now": {"1"}})
		if got := rig.facts(t, cookie); !got.SignedIn || got.MustEnrol || got.ListedMustEnrol {
			t.Errorf("after enrolling while signing in: %+v, want signed in without must-enrol", got)
		}
	})
}

// TestReauthenticationCannotResurrectARevokedSession plays the attacker's
// race: a request proving the user again is in flight when the owner
// revokes the session from another device; the mark it saves must not
// bring the session back.
func TestReauthenticationCannotResurrectARevokedSession(t *testing.T) {
	forEachStore(t, func(t *testing.T, store Store, clock *testkit.Clock) {
		rig := newFactsRig(t, store, clock)
		cookie := rig.login(t, url.Values{"method": {"password"}})
		clock.Advance(time.Minute)

		rig.hold.armed.Store(true)
		type result struct {
			res  *http.Response
			body string
		}
		done := make(chan result)
		go func() {
			res, body := rig.do(t, http.MethodPost, "/reauth", cookie)
			done <- result{res, body}
		}()
		<-rig.hold.reached // marked, not yet saved
		if n, err := rig.m.RevokeUser(context.Background(), factsUser, EndedFromOtherDevice); err != nil || n != 1 {
			t.Fatalf("RevokeUser = %d, %v; want 1 session revoked", n, err)
		}
		rig.hold.let()
		r := <-done

		for _, c := range r.res.Cookies() {
			if c.Name == InsecureCookieName && c.Value != "" {
				t.Errorf("the in-flight reauthentication sent a session cookie: %v", c)
			}
		}
		if _, found, err := store.FindCtx(context.Background(), StoreKey(cookie.Value)); err != nil || found {
			t.Fatalf("after the in-flight reauthentication the store has the session: found=%v, %v", found, err)
		}
		if got := rig.facts(t, cookie); got.SignedIn {
			t.Errorf("the revoked session is signed in again: %+v", got)
		}
	})
}

func TestMarkReauthenticatedThatCannotBeSavedFailsThePage(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	mem := NewMemoryStore(StoreOptions(30*time.Minute, 12*time.Hour, clock.Now))
	rig := newFactsRig(t, refusingWritesStore{mem}, clock)
	cookie := rig.login(t, url.Values{"method": {"password"}})
	// With the last-seen refresh due too: a refused refresh alone is
	// shrugged off, a refused mark must not be.
	clock.Advance(2 * time.Minute)
	if res, body := rig.do(t, http.MethodPost, "/reauth", cookie); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("reauthentication the store refused: %d %q, want 503", res.StatusCode, body)
	}
	if got := rig.facts(t, cookie); !got.ReauthenticatedAt.Equal(got.Created) {
		t.Errorf("refused mark: reauthenticated at %v, want the sign-in %v", got.ReauthenticatedAt, got.Created)
	}
}

func TestSessionFactsNeedASignedInRequest(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	rig := newFactsRig(t, NewMemoryStore(StoreOptions(30*time.Minute, 12*time.Hour, clock.Now)), clock)
	if err := rig.m.MarkReauthenticated(context.Background()); err == nil {
		t.Error("MarkReauthenticated outside LoadAndSave: no error")
	}
	if err := rig.m.ClearMustEnrol(context.Background()); err == nil {
		t.Error("ClearMustEnrol outside LoadAndSave: no error")
	}
	for _, path := range []string{"/reauth", "/enrolled"} {
		if res, _ := rig.do(t, http.MethodPost, path, nil); res.StatusCode != http.StatusConflict {
			t.Errorf("POST %s signed out: %d, want the handler's error (409)", path, res.StatusCode)
		}
	}
}

// TestSessionStoredBeforeFactsCanBeReauthenticated: a session written by
// the code before methods were recorded reads as method "" with its last
// proof at sign-in, and a mark keeps it in the compact form.
func TestSessionStoredBeforeFactsCanBeReauthenticated(t *testing.T) {
	clock := testkit.NewClock(time.UnixMilli(1_700_000_090_000))
	store := NewMemoryStore(StoreOptions(30*time.Minute, 12*time.Hour, clock.Now))
	rig := newFactsRig(t, store, clock)
	token := CookieToken(UserTag(42), testToken(t))
	// oldRememberedSession is user 42's, signed in at 1_700_000_000_000.
	if _, err := store.Create(context.Background(), StoreKey(token), 42, []byte(oldRememberedSession), clock.Now().Add(time.Hour), Limit{}, Origin{}); err != nil {
		t.Fatal(err)
	}
	cookie := &http.Cookie{Name: InsecureCookieName, Value: token}
	created := time.UnixMilli(1_700_000_000_000)
	if before := rig.facts(t, cookie); !before.SignedIn || before.Method != "" || before.MustEnrol || !before.ReauthenticatedAt.Equal(created) {
		t.Fatalf("old session: %+v, want signed in, method \"\", last proof at sign-in %v", before, created)
	}
	rig.mustPost(t, "/reauth", cookie)
	data, found, err := store.FindCtx(context.Background(), StoreKey(token))
	if err != nil || !found {
		t.Fatalf("session after the mark: found=%v, %v", found, err)
	}
	if data[0] != tagCompactFacts {
		t.Errorf("old session after a mark stored with tag %d, want the compact %d", data[0], tagCompactFacts)
	}
	_, values, err := codec{}.Decode(data)
	if err != nil || values[keyMethod] != "" || values[keyReauth] != clock.Now().UnixMilli() {
		t.Errorf("old session after a mark: %v (%v), want method \"\" and the mark at %d", values, err, clock.Now().UnixMilli())
	}
}
