package session_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// The policies of the example: admins 15 min idle, 8 h, and not
// allowed to stay signed in; users the defaults; "keep me signed in" 7 days
// idle, 30 days.
var examplePolicies = session.Policies{
	Default: session.Policy{IdleTimeout: 30 * time.Minute, Lifetime: 12 * time.Hour},
	ByRole: map[string]session.Policy{
		"admin": {IdleTimeout: 15 * time.Minute, Lifetime: 8 * time.Hour, Limit: session.Limit{Max: 1, Policy: session.Reject}},
	},
	Remembered:    session.Policy{IdleTimeout: 7 * 24 * time.Hour, Lifetime: 30 * 24 * time.Hour},
	RememberRoles: []string{"user"},
}

// policyServer signs in whoever the form names, with the role and the
// "keep me signed in" choice it names, and tells who is signed in.
type policyServer struct {
	srv *httptest.Server
}

func newPolicyServer(t *testing.T, m *session.Manager) *policyServer {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		uid, _ := strconv.ParseInt(r.FormValue("uid"), 10, 64)
		id := session.Identity{UserID: uid, Username: "u" + r.FormValue("uid"), Role: r.FormValue("role"), Remember: r.FormValue("remember") == "on"}
		if _, err := m.Login(r.Context(), id, session.Client{IP: "192.0.2.1", Device: "Test"}); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
		}
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		if info, ok := m.Current(r.Context()); ok {
			io.WriteString(w, info.Username+" remembered="+strconv.FormatBool(info.Remember)+" ends="+info.AbsoluteExpiry.UTC().Format(time.RFC3339))
		}
	})
	onErr := func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
	s := &policyServer{srv: httptest.NewServer(m.LoadAndSave(onErr)(mux))}
	t.Cleanup(s.srv.Close)
	return s
}

// login signs a user of role in and returns the session cookie.
func (s *policyServer) login(t *testing.T, uid int, role string, remember bool) (*http.Cookie, int) {
	t.Helper()
	form := url.Values{"uid": {strconv.Itoa(uid)}, "role": {role}}
	if remember {
		form.Set("remember", "on")
	}
	res, err := http.PostForm(s.srv.URL+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Value != "" {
			return c, res.StatusCode
		}
	}
	return nil, res.StatusCode
}

// whoami returns what the server says about the cookie's session, "" when
// it is not signed in.
func (s *policyServer) whoami(t *testing.T, c *http.Cookie) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/whoami", nil)
	req.AddCookie(c)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func TestEachSessionFollowsTheIdleTimeoutAndLifetimeOfItsKind(t *testing.T) {
	clock := testkit.NewClock(time.Now().UTC().Truncate(time.Second))
	idle, lifetime := examplePolicies.Longest()
	m := session.NewManager(session.ManagerOptions{
		Store:    session.NewMemoryStore(session.StoreOptions(idle, lifetime, clock.Now)),
		Policies: &examplePolicies, Now: clock.Now,
	})
	app := newPolicyServer(t, m)
	start := clock.Now()

	user, _ := app.login(t, 1, "user", false)
	remembered, _ := app.login(t, 2, "user", true)
	admin, _ := app.login(t, 3, "admin", true) // admins may not stay signed in
	for name, c := range map[string]*http.Cookie{"user": user, "remembered user": remembered, "admin": admin} {
		if c == nil {
			t.Fatalf("%s got no session cookie", name)
		}
	}
	wants := map[*http.Cookie]string{
		user:       "u1 remembered=false ends=" + start.Add(12*time.Hour).Format(time.RFC3339),
		remembered: "u2 remembered=true ends=" + start.Add(30*24*time.Hour).Format(time.RFC3339),
		admin:      "u3 remembered=false ends=" + start.Add(8*time.Hour).Format(time.RFC3339),
	}
	for c, want := range wants {
		if got := app.whoami(t, c); got != want {
			t.Errorf("whoami = %q, want %q", got, want)
		}
	}
	// The cookie of each lasts as long as its session.
	if got := time.Until(remembered.Expires); got < 30*24*time.Hour-time.Minute || got > 30*24*time.Hour+time.Minute {
		t.Errorf("remembered cookie expires in %v, want 30 days", got)
	}
	if got := time.Until(admin.Expires); got < 8*time.Hour-time.Minute || got > 8*time.Hour+time.Minute {
		t.Errorf("admin cookie expires in %v, want 8 h", got)
	}

	// 20 idle minutes: past the admin's 15, within the user's 30.
	clock.Advance(20 * time.Minute)
	if got := app.whoami(t, admin); got != "" {
		t.Errorf("admin after 20 idle minutes: %q, want signed out", got)
	}
	if got := app.whoami(t, user); !strings.HasPrefix(got, "u1 ") {
		t.Errorf("user after 20 idle minutes: %q, want signed in", got)
	}
	// 40 more idle minutes: past the user's 30, far within the remembered 7 days.
	clock.Advance(40 * time.Minute)
	if got := app.whoami(t, user); got != "" {
		t.Errorf("user after 40 idle minutes: %q, want signed out", got)
	}
	if got := app.whoami(t, remembered); !strings.HasPrefix(got, "u2 ") {
		t.Errorf("remembered user after an idle hour: %q, want signed in", got)
	}
	// Six idle days, then a visit a day for the rest of the month: the
	// remembered session lives until its 30 days are up, not a minute more.
	clock.Advance(6 * 24 * time.Hour)
	for clock.Now().Before(start.Add(30*24*time.Hour - 24*time.Hour)) {
		if got := app.whoami(t, remembered); !strings.HasPrefix(got, "u2 ") {
			t.Fatalf("remembered user on day %.0f: %q, want signed in", clock.Now().Sub(start).Hours()/24, got)
		}
		clock.Advance(24 * time.Hour)
	}
	clock.Set(start.Add(30 * 24 * time.Hour))
	if got := app.whoami(t, remembered); got != "" {
		t.Errorf("remembered user after 30 days: %q, want signed out", got)
	}
}

func TestEachRoleHasItsOwnSessionLimit(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	idle, lifetime := examplePolicies.Longest()
	m := session.NewManager(session.ManagerOptions{
		Store:    session.NewMemoryStore(session.StoreOptions(idle, lifetime, clock.Now)),
		Policies: &examplePolicies, Now: clock.Now,
	})
	app := newPolicyServer(t, m)
	for i := range 3 {
		if c, status := app.login(t, 1, "user", false); c == nil {
			t.Fatalf("user's sign-in %d: %d, want a session (no limit for users)", i+1, status)
		}
	}
	if c, _ := app.login(t, 2, "admin", false); c == nil {
		t.Fatal("admin's first sign-in got no session")
	}
	if c, status := app.login(t, 2, "admin", false); c != nil || status != http.StatusConflict {
		t.Errorf("admin's second sign-in: %d, cookie %v; want refused (limit 1, reject)", status, c != nil)
	}
}

// TestRedisKeepsAPlainSessionOnlyForItsOwnIdleTimeout: the store must keep
// remembered sessions for days, but a plain session that nobody uses any
// more must not stay in Redis for the longest timeout: after each refresh
// its key lives until its own idle end, plus one refresh interval.
func TestRedisKeepsAPlainSessionOnlyForItsOwnIdleTimeout(t *testing.T) {
	srv := testsvc.StartRedis(t)
	clock := testkit.NewClock(time.Now())
	idle, lifetime := examplePolicies.Longest()
	opts := session.StoreOptions(idle, lifetime, nil) // Redis expires keys by its own clock
	m := session.NewManager(session.ManagerOptions{
		Store:    session.NewRedisStore(newRedisPool(t, srv.URL), opts),
		Policies: &examplePolicies, Now: clock.Now,
	})
	app := newPolicyServer(t, m)
	conn := srv.Conn(t)
	ttl := func() time.Duration {
		t.Helper()
		keys, err := redis.Strings(conn.Do("KEYS", "hp:s:*"))
		if err != nil || len(keys) != 1 {
			t.Fatalf("session keys %v (%v), want one", keys, err)
		}
		ms, err := redis.Int64(conn.Do("PTTL", keys[0]))
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(ms) * time.Millisecond
	}
	c, _ := app.login(t, 1, "user", false)
	clock.Advance(2 * time.Minute) // past the refresh interval
	if got := app.whoami(t, c); !strings.HasPrefix(got, "u1 ") {
		t.Fatalf("whoami = %q", got)
	}
	// Idle end 32 minutes after the real now, plus one minute of refresh.
	if got, want := ttl(), 33*time.Minute; got < want-time.Minute || got > want+time.Minute {
		t.Errorf("after a refresh the plain session's key lives %v, want about %v (its own idle timeout), not days", got, want)
	}
	if _, err := conn.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
}
