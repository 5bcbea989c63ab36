package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func newTestApp(t *testing.T, now func() time.Time) *httptest.Server {
	t.Helper()
	a, err := newApp(slog.New(slog.NewTextHandler(io.Discard, nil)), config{replica: "jwt-test", idle: 30 * time.Minute, lifetime: 12 * time.Hour}, []byte("0123456789abcdef0123456789abcdef"), now)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	return srv
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func login(t *testing.T, base string) *http.Cookie {
	t.Helper()
	res, err := noRedirects.PostForm(base+"/login", url.Values{"username": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	t.Fatalf("login %d set no %s cookie", res.StatusCode, cookieName)
	return nil
}

func get(t *testing.T, base, cookie string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookieName+"="+cookie)
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestTokenServesHallpassHomePage(t *testing.T) {
	srv := newTestApp(t, time.Now)
	c := login(t, srv.URL)
	if !c.Secure || !c.HttpOnly {
		t.Errorf("cookie %+v, want Secure and HttpOnly", c)
	}
	res, body := get(t, srv.URL, c.Value)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("home: %d", res.StatusCode)
	}
	for _, want := range []string{"Hello, alice", "You are signed in", "served by replica <code>jwt-test</code>", "30 minutes without activity", "/account/sessions"} {
		if !strings.Contains(body, want) {
			t.Errorf("home page lacks %q", want)
		}
	}
	for _, h := range []string{"Content-Security-Policy", "Strict-Transport-Security", "X-Request-ID", "X-Served-By"} {
		if res.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", res.Header.Get("Cache-Control"))
	}
}

func TestBadTokensAreSentToLogin(t *testing.T) {
	srv := newTestApp(t, time.Now)
	good := login(t, srv.URL).Value
	past := newTestApp(t, func() time.Time { return time.Now().Add(-13 * time.Hour) })
	expired := login(t, past.URL).Value
	parts := strings.Split(good, ".")
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "42", "iss": issuer, "aud": audience, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, tok := range map[string]string{
		"none":           "",
		"garbage":        "not.a.token",
		"tampered":       parts[0] + "." + parts[1] + "x." + parts[2],
		"other key":      expired, // also expired, and signed by another server's key
		"alg none":       none,
		"truncated sig":  good[:len(good)-2],
		"missing claims": parts[0] + ".e30." + parts[2],
	} {
		if res, _ := get(t, srv.URL, tok); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
			t.Errorf("%s: %d %q, want 303 to /login", name, res.StatusCode, res.Header.Get("Location"))
		}
	}
}
