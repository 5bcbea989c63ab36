package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// naiveRedisStore saves sessions the way scs's redisstore does, with a
// plain SET, to show that the resurrection test catches that design.
type naiveRedisStore struct {
	*RedisStore
	pool *redis.Pool
}

func (n naiveRedisStore) CommitCtx(ctx context.Context, key string, b []byte, expiry time.Time) error {
	c := n.pool.Get()
	defer c.Close()
	_, err := c.Do("SET", sessionPrefix+key, b, "PX", time.Until(expiry).Milliseconds())
	return err
}

// inFlightRig is a Manager behind an HTTP server with a handler that stops
// between loading the session and answering, for as long as the test says.
type inFlightRig struct {
	srv      *httptest.Server
	m        *Manager
	store    Store
	clock    *testkit.Clock
	loaded   chan struct{}
	release  chan struct{}
	signedIn func() bool
}

func newInFlightRig(t *testing.T, store Store, clock *testkit.Clock) *inFlightRig {
	rig := &inFlightRig{store: store, clock: clock, loaded: make(chan struct{}), release: make(chan struct{})}
	rig.m = NewManager(ManagerOptions{Store: store, IdleTimeout: 30 * time.Minute, Lifetime: 12 * time.Hour, CookieSecure: false, ReplicaID: "r1", Now: clock.Now})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if _, err := rig.m.Login(r.Context(), Identity{UserID: 7, Username: "alice", Role: "user"}, Client{IP: "127.0.0.1", Device: "Test"}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		rig.loaded <- struct{}{}
		<-rig.release
		io.WriteString(w, "slow page")
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		if info, ok := rig.m.Current(r.Context()); ok {
			io.WriteString(w, info.Username)
		}
	})
	mux.HandleFunc("GET /ids", func(w http.ResponseWriter, r *http.Request) {
		// The request's own public ID, then the one ListUser marks Current.
		id, ok := rig.m.CurrentPublicID(r.Context())
		if !ok {
			io.WriteString(w, "not signed in")
			return
		}
		recs, err := rig.m.ListUser(r.Context(), 7)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		listed := "none"
		for _, rec := range recs {
			if rec.Current {
				listed = rec.PublicID
			}
		}
		io.WriteString(w, id+" "+listed)
	})
	onErr := func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
	rig.srv = httptest.NewServer(rig.m.LoadAndSave(onErr)(mux))
	t.Cleanup(rig.srv.Close)
	return rig
}

func (rig *inFlightRig) do(t *testing.T, method, path string, cookie *http.Cookie) *http.Response {
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
	return res
}

// login signs user 7 in on a fresh browser and returns the session cookie.
func (rig *inFlightRig) login(t *testing.T) *http.Cookie {
	t.Helper()
	res := rig.do(t, http.MethodPost, "/login", nil)
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == InsecureCookieName {
			return c
		}
	}
	t.Fatalf("login set no cookie (status %d)", res.StatusCode)
	return nil
}

// get requests path with cookie (nil for none) and returns the body.
func (rig *inFlightRig) get(t *testing.T, path string, cookie *http.Cookie) string {
	t.Helper()
	res := rig.do(t, http.MethodGet, path, cookie)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
	}
	return string(body)
}

// resurrects runs the scenario and reports whether the revoked session came
// back: sign in; start a request that loads the session and will refresh
// its last-seen time; revoke every session of the user while that request
// is in flight; let it finish; look again.
func (rig *inFlightRig) resurrects(t *testing.T) bool {
	t.Helper()
	cookie := rig.login(t)
	rig.clock.Advance(2 * time.Minute) // the next request refreshes last-seen: a write

	done := make(chan *http.Response)
	go func() { done <- rig.do(t, http.MethodGet, "/slow", cookie) }()
	<-rig.loaded
	if n, err := rig.m.RevokeUser(context.Background(), 7, EndedByAdmin); err != nil || n != 1 {
		t.Fatalf("RevokeUser = %d, %v; want 1 session revoked", n, err)
	}
	close(rig.release)
	slow := <-done
	slow.Body.Close()

	_, found, err := rig.store.FindCtx(context.Background(), StoreKey(cookie.Value))
	if err != nil {
		t.Fatal(err)
	}
	who := rig.do(t, http.MethodGet, "/whoami", cookie)
	defer who.Body.Close()
	body, _ := io.ReadAll(who.Body)
	if found != (string(body) == "alice") {
		t.Fatalf("store says found=%v but the next request is signed in as %q", found, body)
	}
	return found
}

func TestRevokedSessionCannotBeResurrectedByInFlightRequest(t *testing.T) {
	start := time.Now()
	t.Run("memory", func(t *testing.T) {
		clock := testkit.NewClock(start)
		store := NewMemoryStore(StoreOptions(30*time.Minute, 12*time.Hour, clock.Now))
		if newInFlightRig(t, store, clock).resurrects(t) {
			t.Fatal("the in-flight request brought the revoked session back")
		}
	})
	rs := testsvc.StartRedis(t)
	pool, err := redisx.NewPool(rs.URL, redisx.DefaultPoolOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	t.Run("redis", func(t *testing.T) {
		clock := testkit.NewClock(start)
		store := NewRedisStore(pool, StoreOptions(30*time.Minute, 12*time.Hour, nil))
		rig := newInFlightRig(t, store, clock)
		if rig.resurrects(t) {
			t.Fatal("the in-flight request brought the revoked session back")
		}
		reason, err := store.EndReason(context.Background(), mustOnlyTombstone(t, rs))
		if err != nil || reason != EndedByAdmin {
			t.Errorf("tombstone reason %q (%v), want %q", reason, err, EndedByAdmin)
		}
	})
	// The same scenario against a plain-SET store (scs's redisstore design)
	// must show the resurrection, or this test proves nothing.
	t.Run("naive plain SET resurrects", func(t *testing.T) {
		if _, err := pool.Get().Do("FLUSHDB"); err != nil {
			t.Fatal(err)
		}
		clock := testkit.NewClock(start)
		store := naiveRedisStore{RedisStore: NewRedisStore(pool, StoreOptions(30*time.Minute, 12*time.Hour, nil)), pool: pool}
		if !newInFlightRig(t, store, clock).resurrects(t) {
			t.Fatal("the naive store did not resurrect the session: the scenario is not exercising the race")
		}
	})
}

// mustOnlyTombstone returns the session key of the single tombstone in Redis.
func mustOnlyTombstone(t *testing.T, rs *testsvc.RedisServer) string {
	t.Helper()
	keys, err := redis.Strings(rs.Conn(t).Do("KEYS", tombstonePrefix+"*"))
	if err != nil || len(keys) == 0 {
		t.Fatalf("tombstones: %q, %v", keys, err)
	}
	// Login's token renewal leaves no tombstone (there was no old token), so
	// the one tombstone is the revocation's.
	if len(keys) != 1 {
		t.Fatalf("tombstones %q, want exactly one", keys)
	}
	return keys[0][len(tombstonePrefix):]
}

// refusingWritesStore answers reads but refuses updates, like a Redis
// primary just promoted that waits for a replica (min-replicas-to-write).
type refusingWritesStore struct {
	Store
}

func (refusingWritesStore) CommitCtx(context.Context, string, []byte, time.Time) error {
	return errors.New("NOREPLICAS Not enough good replicas to write")
}

func TestRefreshThatCannotBeSavedDoesNotFailThePage(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	mem := NewMemoryStore(StoreOptions(30*time.Minute, 12*time.Hour, clock.Now))
	rig := newInFlightRig(t, refusingWritesStore{mem}, clock)
	res := rig.do(t, http.MethodPost, "/login", nil)
	res.Body.Close()
	cookie := res.Cookies()[0]

	rig.clock.Advance(2 * time.Minute) // the refresh is due, and will be refused
	for range 2 {
		who := rig.do(t, http.MethodGet, "/whoami", cookie)
		body, _ := io.ReadAll(who.Body)
		who.Body.Close()
		if who.StatusCode != http.StatusOK || string(body) != "alice" {
			t.Fatalf("page with a refused refresh: %d %q, want 200 signed in as alice", who.StatusCode, body)
		}
		if who.Header.Get("Set-Cookie") != "" {
			t.Errorf("a refresh wrote the cookie: %q", who.Header.Get("Set-Cookie"))
		}
	}
}

func TestCurrentPublicIDIsTheSessionListUserMarksCurrent(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	store := NewMemoryStore(StoreOptions(30*time.Minute, 12*time.Hour, clock.Now))
	rig := newInFlightRig(t, store, clock)
	first, second := rig.login(t), rig.login(t)

	for _, cookie := range []*http.Cookie{first, second} {
		own, listed, ok := strings.Cut(rig.get(t, "/ids", cookie), " ")
		if !ok {
			t.Fatalf("GET /ids with a session cookie: not signed in")
		}
		if own != listed {
			t.Errorf("CurrentPublicID = %q, but ListUser marks %q Current", own, listed)
		}
		if want := publicIDFor(7, StoreKey(cookie.Value)); own != want {
			t.Errorf("CurrentPublicID = %q, want %q, the public ID of the cookie's token", own, want)
		}
	}
	if rig.get(t, "/ids", first) == rig.get(t, "/ids", second) {
		t.Error("two sessions of one user have the same public ID")
	}
	if got := rig.get(t, "/ids", nil); got != "not signed in" {
		t.Errorf("GET /ids without a session = %q, want not signed in", got)
	}
	if id, ok := rig.m.CurrentPublicID(context.Background()); ok {
		t.Errorf("CurrentPublicID outside a request = %q, true; want false", id)
	}
}

// TestRevokeByPublicIDCostsTwoRoundTrips holds Manager.Revoke to its doc
// comment: one round trip to find the key, one to revoke it.
func TestRevokeByPublicIDCostsTwoRoundTrips(t *testing.T) {
	rs := testsvc.StartRedis(t)
	pool, sent := testsvc.CountingPool(t, rs.URL)
	clock := testkit.NewClock(time.Now())
	store := NewRedisStore(pool, StoreOptions(30*time.Minute, 12*time.Hour, clock.Now))
	m := NewManager(ManagerOptions{Store: store, IdleTimeout: 30 * time.Minute, Lifetime: 12 * time.Hour, Now: clock.Now})
	ctx := context.Background()
	const user, other = 7, 8
	// Five sessions of user, one of other, stored under keys as Login
	// makes them; the public IDs come from those keys.
	var ids []string
	for range 5 {
		key := StoreKey(CookieToken(UserTag(user), testToken(t)))
		if _, err := store.Create(ctx, key, user, []byte("v"), clock.Now().Add(time.Hour), Limit{}, Origin{}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		ids = append(ids, publicIDFor(user, key))
	}
	othersKey := StoreKey(CookieToken(UserTag(other), testToken(t)))
	if _, err := store.Create(ctx, othersKey, other, []byte("v"), clock.Now().Add(time.Hour), Limit{}, Origin{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	// Load the scripts (a first call may send EVALSHA, then EVAL).
	if _, err := m.Revoke(ctx, user, ids[0], EndedFromOtherDevice); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	cases := []struct {
		name       string
		publicID   string
		wantEnded  bool
		roundTrips int64
	}{
		{"a live session", ids[1], true, 2},
		{"the same session again", ids[1], false, 1},
		{"another user's session", publicIDFor(other, othersKey), false, 0},
		{"a malformed ID", "junk", false, 0},
	}
	for _, tc := range cases {
		before := sent.Load()
		ended, err := m.Revoke(ctx, user, tc.publicID, EndedFromOtherDevice)
		if err != nil {
			t.Fatalf("Revoke %s: %v", tc.name, err)
		}
		if ended != tc.wantEnded {
			t.Errorf("Revoke %s = %v, want %v", tc.name, ended, tc.wantEnded)
		}
		if got := sent.Load() - before; got != tc.roundTrips {
			t.Errorf("Revoke %s sent %d commands, want %d", tc.name, got, tc.roundTrips)
		}
	}
	if keys, err := store.ListUserKeys(ctx, user); err != nil || len(keys) != 3 {
		t.Errorf("user's live sessions after two revocations = %d, %v; want 3", len(keys), err)
	}
	if keys, err := store.ListUserKeys(ctx, other); err != nil || len(keys) != 1 {
		t.Errorf("other user's live sessions = %d, %v; want 1 untouched", len(keys), err)
	}
}

// testToken returns a fresh token shaped like scs's.
func testToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
