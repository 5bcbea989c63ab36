package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/requestid"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/user"
)

// hashToken is the store key of a token.
func hashToken(token string) string { return session.StoreKey(token) }

// redisCalls returns how often Redis has run each command, except INFO
// itself, so a test can count what one request cost. Commands a Lua script
// runs are counted too, under their own names.
func redisCalls(t *testing.T, conn redis.Conn) map[string]int {
	t.Helper()
	info, err := redis.String(conn.Do("INFO", "commandstats"))
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	calls := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_") || strings.HasPrefix(line, "cmdstat_info:") {
			continue
		}
		name, stats, _ := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		n, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		v, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		calls[name] = v
	}
	return calls
}

// callsSince is the per-command difference between two redisCalls readings.
func callsSince(before, after map[string]int) map[string]int {
	d := map[string]int{}
	for name, n := range after {
		if n != before[name] {
			d[name] = n - before[name]
		}
	}
	return d
}

// Without the session cache (HALLPASS_SESSION_CACHE=false), a signed-in
// read is one GET; TestCachedPageViewsCostNoRedisCommand has the default.
func TestAuthenticatedReadCostsOneRedisCommand(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis", idle: 30 * time.Minute, noSessionCache: true})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", "correct horse battery")
	conn := ts.redisConn()

	for i := range 5 {
		before := redisCalls(t, conn)
		res := b.get("/")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET / status %d", res.StatusCode)
		}
		if d := callsSince(before, redisCalls(t, conn)); len(d) != 1 || d["get"] != 1 {
			t.Fatalf("request %d cost Redis commands %v, want one GET", i, d)
		}
		if res.Header.Get("Set-Cookie") != "" {
			t.Fatalf("request %d rewrote the cookie on a plain read", i)
		}
		ts.clock.Advance(10 * time.Second)
	}
	// Once the last-seen time is a minute old, one request refreshes it.
	ts.clock.Advance(time.Minute)
	before := redisCalls(t, conn)
	b.get("/")
	if d := callsSince(before, redisCalls(t, conn)); d["get"] != 1 || d["evalsha"] != 1 {
		t.Fatalf("refreshing request cost Redis commands %v, want one GET and one conditional-write script", d)
	}
	before = redisCalls(t, conn)
	b.get("/")
	if d := callsSince(before, redisCalls(t, conn)); len(d) != 1 || d["get"] != 1 {
		t.Fatalf("request after the refresh cost Redis commands %v, want one GET", d)
	}
}

func TestNoRawTokenInRedis(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis"})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", "correct horse battery")
	token := b.sessionCookie()
	conn := ts.redisConn()
	keys, err := redis.Strings(conn.Do("KEYS", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys in Redis after a login")
	}
	foundHashed := false
	for _, k := range keys {
		if strings.Contains(k, token) {
			t.Errorf("key %q contains the raw token", k)
		}
		if strings.Contains(k, hashToken(token)) {
			foundHashed = true
		}
		if typ, _ := redis.String(conn.Do("TYPE", k)); typ == "string" {
			v, err := redis.Bytes(conn.Do("GET", k))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(v), token) {
				t.Errorf("value of %q contains the raw token", k)
			}
		}
	}
	if !foundHashed {
		t.Errorf("no key derives from the token's hash; keys: %q", keys)
	}
}

func TestRedisOutageAnswers503AndRecovers(t *testing.T) {
	for _, outage := range []string{"stopped", "hung"} {
		t.Run(outage, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: "redis"})
			ts.createUser("alice", "correct horse battery", user.RoleUser)
			b := ts.newBrowser()
			b.login("alice", "correct horse battery")
			token := b.sessionCookie()

			// Keep the data across the outage: a stopped Redis comes back
			// from its snapshot, a hung one never lost it.
			if outage == "stopped" {
				if _, err := ts.redisConn().Do("SAVE"); err != nil {
					t.Fatal(err)
				}
				ts.redis.Stop(t)
			} else {
				ts.redis.Pause(t)
			}

			start := time.Now()
			res := b.get("/")
			if took := time.Since(start); took > 2500*time.Millisecond {
				t.Errorf("outage answer took %v, want about 2 s at most", took)
			}
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("GET / during outage: %d, want 503", res.StatusCode)
			}
			if res.Header.Get("Set-Cookie") != "" {
				t.Errorf("503 touched the cookie: %q", res.Header.Get("Set-Cookie"))
			}
			if res.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if got := res.text(t, "h1"); got != "Temporarily unavailable" {
				t.Errorf("503 page heading %q", got)
			}
			ready := b.get("/readyz")
			if ready.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(ready.body) != "not ready: session store unreachable" {
				t.Errorf("/readyz during outage: %d %q, want 503 naming the session store and nothing of the error", ready.StatusCode, ready.body)
			}

			if outage == "stopped" {
				ts.redis.Start(t)
			} else {
				ts.redis.Resume(t)
			}
			testkit.Eventually(t, 10*time.Second, "the signed-in page after Redis came back", func() error {
				if res := b.get("/"); res.StatusCode != http.StatusOK {
					return fmt.Errorf("GET / answered %d", res.StatusCode)
				}
				return nil
			})
			if b.sessionCookie() != token {
				t.Error("the outage changed the session cookie")
			}
			assertSignedIn(t, b, "alice")
			if ready := b.get("/readyz"); ready.StatusCode != http.StatusOK {
				t.Errorf("/readyz after recovery: %d %q", ready.StatusCode, ready.body)
			}
		})
	}
}

func TestSecurityHeadersOnEveryPage(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	b := ts.newBrowser()
	for _, path := range []string{"/login", "/nope", "/static/style.css", "/healthz"} {
		res := b.get(path)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline code: %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" || h.Get("X-Served-By") != "test-replica" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	first, second := b.get("/login").Header.Get("X-Request-ID"), b.get("/login").Header.Get("X-Request-ID")
	if first == "" || first == second {
		t.Errorf("X-Request-ID %q then %q, want a fresh ID per request", first, second)
	}
	if !strings.Contains(ts.logs.String(), "request_id="+first) {
		t.Errorf("the request log does not carry request ID %s", first)
	}
	if hsts := b.get("/login").Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=31536000") {
		t.Errorf("HSTS %q, want a year", hsts)
	}
	if cc := b.get("/login").Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("/login Cache-Control %q, want no-store", cc)
	}
}

func TestErrorPages(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	b := ts.newBrowser()
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/no-such-page", http.StatusNotFound},
		{http.MethodGet, "/static/../../go.mod", http.StatusNotFound},
		{http.MethodGet, "/static/", http.StatusNotFound},
		{http.MethodGet, "/static/nope.css", http.StatusNotFound},
		{http.MethodPut, "/login", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/", http.StatusMethodNotAllowed},
	} {
		req, err := http.NewRequest(tc.method, ts.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res := b.do(req)
		if res.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.status)
			continue
		}
		if got := res.text(t, ".status-code"); got != strconv.Itoa(tc.status) {
			t.Errorf("%s %s: error page shows %q", tc.method, tc.path, got)
		}
	}
	if res := b.get("/static/style.css"); res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") {
		t.Errorf("style.css: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

func TestPanicBecomes500PageInTheAccessLogWithItsRequestID(t *testing.T) {
	logs := &testkit.LogBuffer{}
	p, err := testPages()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{pages: p, Deps: Deps{
		Logger:    slog.New(requestid.Handler(slog.NewTextHandler(logs, nil))),
		ReplicaID: "r1",
		Sessions:  session.NewManager(session.ManagerOptions{Store: session.NewMemoryStore(session.Options{})}),
	}}
	h := s.logRequests(s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "boom") {
		t.Error("the panic value reached the page")
	}
	id := rec.Header().Get("X-Request-ID")
	doc, err := goquery.NewDocumentFromReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(doc.Find("#request-id").Text()); id == "" || got != id {
		t.Errorf("the 500 page shows reference %q, want the request ID %q", got, id)
	}
	var panicLine, accessLine string
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, "boom"):
			panicLine = line
		case strings.Contains(line, "msg=request "):
			accessLine = line
		}
	}
	if !strings.Contains(panicLine, "request_id="+id) {
		t.Errorf("the panic was not logged with request_id=%s:\n%s", id, logs.String())
	}
	if !strings.Contains(accessLine, "status=500") || !strings.Contains(accessLine, "request_id="+id) {
		t.Errorf("the access log does not show the panic as a 500 with its request ID:\n%s", logs.String())
	}
}

func TestHealthAndReadiness(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis"})
	b := ts.newBrowser()
	if res := b.get("/healthz"); res.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", res.StatusCode)
	}
	if res := b.get("/readyz"); res.StatusCode != http.StatusOK || strings.TrimSpace(res.body) != "ready" {
		t.Errorf("/readyz: %d %q", res.StatusCode, res.body)
	}
}

// TestPagesAreServedWhileTheRedisPrimaryIsDead kills the Redis primary
// (SIGKILL; no Sentinel here to promote the replica): signed-in pages are
// still served, read from the replica, and the server stays ready; a
// sign-out and a sign-in answer 503 with a page that says they are paused,
// and the session they would have changed is untouched.
func TestPagesAreServedWhileTheRedisPrimaryIsDead(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis", redisReplica: true})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	ts.createUser("bob", "correct horse battery", user.RoleUser)
	alice := ts.newBrowser()
	alice.login("alice", "correct horse battery")
	assertSignedIn(t, alice, "alice")
	token := alice.sessionCookie()

	ts.redis.Kill(t)
	for range 5 {
		assertSignedIn(t, alice, "alice")
	}
	if ready := alice.get("/readyz"); ready.StatusCode != http.StatusOK {
		t.Errorf("/readyz with the sessions readable from the replica: %d %q, want 200", ready.StatusCode, ready.body)
	}
	paused := func(what string, res response) {
		t.Helper()
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s with the primary dead: %d, want 503", what, res.StatusCode)
		}
		if msg := res.text(t, ".error-page h1 + p"); !strings.Contains(msg, "Signing in, signing out and ending sessions are paused") {
			t.Errorf("%s with the primary dead says %q, want that signing in and out are paused", what, msg)
		}
	}
	paused("sign-out", alice.postForm("/logout", nil))
	paused("sign-in", ts.newBrowser().postForm("/login", url.Values{"username": {"bob"}, "password": {"correct horse battery"}}))
	if alice.sessionCookie() != token {
		t.Error("the refused sign-out changed the session cookie")
	}
	assertSignedIn(t, alice, "alice")
}
