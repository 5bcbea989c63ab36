package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// FuzzSessionCookie sends arbitrary Cookie headers to a signed-in page: a
// forged or malformed cookie is no session — never a panic, never a 500,
// never a signed-in page, and never echoed back.
func FuzzSessionCookie(f *testing.F) {
	ts := newTestServer(f, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	handler := ts.Config.Handler
	for _, seed := range []string{
		session.SecureCookieName + "=" + strings.Repeat("A", 43),
		session.SecureCookieName + "=3f." + strings.Repeat("A", 43), // well formed: looked up, found nowhere
		session.SecureCookieName + "=zz." + strings.Repeat("A", 43),
		session.SecureCookieName + "=",
		session.SecureCookieName + "=../../etc/passwd",
		session.SecureCookieName + "=\x00\xff",
		strings.Repeat("a=;", 500),
		session.SecureCookieName + "=" + strings.Repeat("x", 5000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cookie string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Cookie", cookie)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("GET / with Cookie %q: %d, want 303 to the login page", cookie, rec.Code)
		}
		if len(cookie) > 8 && strings.Contains(rec.Body.String(), cookie) {
			t.Fatalf("the response echoes the cookie %q", cookie)
		}
	})
}

// FuzzLoginForm posts arbitrary form bodies to /login: every answer is a
// clear 4xx (or a sign-in redirect for the right password), never a panic or
// a 5xx.
func FuzzLoginForm(f *testing.F) {
	ts := newTestServer(f, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	handler := ts.Config.Handler
	for _, seed := range []string{
		url.Values{"username": {"alice"}, "password": {alicePW}}.Encode(),
		url.Values{"username": {"alice"}, "password": {"wrong"}}.Encode(),
		url.Values{"username": {"al\x00ice"}, "password": {"\xff\xfe"}}.Encode(),
		"username=%zz&password=%",
		"username=alice&password=" + strings.Repeat("p", 300),
		url.Values{"username": {"alice"}, "password": {alicePW}, "next": {"//evil.example"}}.Encode(),
		";;;&&&===",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusSeeOther:
			if loc := rec.Header().Get("Location"); safeNext(loc) != loc {
				t.Fatalf("sign-in redirected off-site to %q", loc)
			}
		case rec.Code >= 400 && rec.Code < 500:
		default:
			t.Fatalf("POST /login %q: %d", body, rec.Code)
		}
	})
}
