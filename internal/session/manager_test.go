package session

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

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
	clock    *fakeClock
	loaded   chan struct{}
	release  chan struct{}
	signedIn func() bool
}

func newInFlightRig(t *testing.T, store Store, clock *fakeClock) *inFlightRig {
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

// resurrects runs the scenario and reports whether the revoked session came
// back: sign in; start a request that loads the session and will refresh
// its last-seen time; revoke every session of the user while that request
// is in flight; let it finish; look again.
func (rig *inFlightRig) resurrects(t *testing.T) bool {
	t.Helper()
	res := rig.do(t, http.MethodPost, "/login", nil)
	res.Body.Close()
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == InsecureCookieName {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("login set no cookie (status %d)", res.StatusCode)
	}
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

	_, found, err := rig.store.FindCtx(context.Background(), hashToken(cookie.Value))
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
		clock := &fakeClock{now: start}
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
		clock := &fakeClock{now: start}
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
		clock := &fakeClock{now: start}
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
	clock := &fakeClock{now: time.Now()}
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
