package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

func TestSignUpSignInAndSignOut(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend, signup: true})
			b := ts.newBrowser()

			res := b.postForm("/signup", url.Values{"username": {"Alice"}, "password": {"correct horse battery"}, "confirm_password": {"correct horse battery"}})
			assertRedirect(t, res, "/")
			assertSignedIn(t, b, "Alice")

			res = b.postForm("/logout", nil)
			assertRedirect(t, res, "/login?reason=signed-out")
			assertSignedOut(t, b)

			res = b.login("alice", "correct horse battery") // usernames are case-insensitive
			assertRedirect(t, res, "/")
			home := b.get("/")
			if got := home.text(t, ".served-by"); got != "test-replica" {
				t.Errorf("home shows replica %q, want test-replica", got)
			}
			if got := home.Header.Get("X-Served-By"); got != "test-replica" {
				t.Errorf("X-Served-By %q, want test-replica", got)
			}
		})
	}
}

func TestSessionCookieFlags(t *testing.T) {
	for _, browserSession := range []bool{false, true} {
		t.Run(map[bool]string{false: "persistent", true: "browser-session"}[browserSession], func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: "memory", browserSessionCookie: browserSession})
			ts.createUser("alice", "correct horse battery", user.RoleUser)
			b := ts.newBrowser()
			res := b.login("alice", "correct horse battery")
			cookie := sessionSetCookie(t, res)
			if !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" || cookie.Domain != "" {
				t.Errorf("cookie %+v: want HttpOnly, Secure, SameSite=Lax, Path=/, no Domain", cookie)
			}
			// The shard tag of the user's keys (two hex digits), a dot,
			// then 32 random bytes, base64url.
			if tag, random, ok := strings.Cut(cookie.Value, "."); !ok || len(tag) != 2 || len(random) != 43 {
				t.Errorf("token %q: want <2 hex digits>.<43 characters of base64url>", cookie.Value)
			}
			if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("login response Cache-Control %q, want no-store", cc)
			}
			if browserSession {
				if !cookie.Expires.IsZero() || cookie.MaxAge != 0 {
					t.Errorf("cookie has Expires %v / Max-Age %d; want a browser-session cookie", cookie.Expires, cookie.MaxAge)
				}
			} else {
				// The session's absolute end (the default 12 h), never
				// later: the clocks may be a second apart.
				lifetime := 12 * time.Hour
				if got := time.Duration(cookie.MaxAge) * time.Second; got < lifetime-3*time.Second || got > lifetime+time.Second {
					t.Errorf("cookie Max-Age %v, want the session lifetime %v", got, lifetime)
				}
				if end := ts.clock.Now().Add(lifetime); cookie.Expires.Before(end.Add(-3*time.Second)) || cookie.Expires.After(end.Add(time.Second)) {
					t.Errorf("cookie Expires %v, want the absolute end %v", cookie.Expires, end)
				}
			}
			// Signing out expires the cookie at once.
			out := sessionSetCookie(t, b.postForm("/logout", nil))
			if out.MaxAge >= 0 {
				t.Errorf("sign-out cookie Max-Age %d, want it deleted", out.MaxAge)
			}
		})
	}
}

// sessionSetCookie returns the session cookie a response sets.
func sessionSetCookie(t *testing.T, res response) *http.Cookie {
	t.Helper()
	for _, line := range res.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("parse Set-Cookie %q: %v", line, err)
		}
		if c.Name == session.SecureCookieName {
			return c
		}
	}
	t.Fatalf("no %s cookie set; Set-Cookie: %q", session.SecureCookieName, res.Header.Values("Set-Cookie"))
	return nil
}

func TestInsecureCookieModeDropsHostPrefix(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", cookieInsec: true})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	res := ts.newBrowser().postForm("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
	names := map[string]bool{}
	for _, line := range res.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("parse Set-Cookie %q: %v", line, err)
		}
		if c.Secure || strings.HasPrefix(c.Name, "__Host-") {
			t.Errorf("cookie %s Secure=%v, want no Secure and no __Host- prefix", c.Name, c.Secure)
		}
		names[c.Name] = true
	}
	if !names[session.InsecureCookieName] || !names["hallpass-device"] {
		t.Errorf("cookies %v, want %s and hallpass-device", names, session.InsecureCookieName)
	}
}

func TestSigningInGivesTheBrowserALongLivedDeviceCookie(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	res := ts.newBrowser().login("alice", "correct horse battery")
	var device *http.Cookie
	for _, line := range res.Header.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(line); err == nil && c.Name == "__Host-hallpass-device" {
			device = c
		}
	}
	if device == nil {
		t.Fatalf("no device cookie; Set-Cookie: %q", res.Header.Values("Set-Cookie"))
	}
	if !device.HttpOnly || !device.Secure || device.SameSite != http.SameSiteStrictMode || device.Path != "/" || device.Domain != "" {
		t.Errorf("device cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/, no Domain", device)
	}
	if device.MaxAge < 365*24*60*60 || strings.Contains(strings.ToLower(device.Value), "alice") {
		t.Errorf("device cookie Max-Age %d value %q: want about a year, not naming the account", device.MaxAge, device.Value)
	}
	// A refused sign-in gives none.
	res = ts.newBrowser().postForm("/login", url.Values{"username": {"alice"}, "password": {"wrong password"}})
	if got := res.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("a refused sign-in set cookies %q", got)
	}
}

func TestLoginRenewsTokenAndOldTokenIsDead(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", "correct horse battery", user.RoleUser)
			b := ts.newBrowser()
			b.login("alice", "correct horse battery")
			first := b.sessionCookie()

			b.login("alice", "correct horse battery")
			second := b.sessionCookie()
			if first == "" || second == "" || first == second {
				t.Fatalf("tokens before/after second login: %q / %q; want two different tokens", first, second)
			}
			assertSignedIn(t, b, "alice")

			replay := ts.newBrowser()
			replay.setSessionCookie(first)
			assertSignedOut(t, replay)
		})
	}
}

func TestAttackerChosenTokenIsNeverAdopted(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "redis"})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	b := ts.newBrowser()
	planted := strings.Repeat("A", 43)
	b.setSessionCookie(planted)
	b.login("alice", "correct horse battery")
	if got := b.sessionCookie(); got == planted {
		t.Fatal("login kept the attacker's planted token")
	}
	keys, err := redis.Strings(ts.redisConn().Do("KEYS", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, planted) || strings.Contains(k, hashToken(planted)) {
			t.Errorf("Redis holds key %q for the planted token", k)
		}
	}
}

func TestLoggedOutCookieReplayedIsRefused(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", "correct horse battery", user.RoleUser)
			b := ts.newBrowser()
			b.login("alice", "correct horse battery")
			token := b.sessionCookie()

			res := b.postForm("/logout", nil)
			assertRedirect(t, res, "/login")
			expired := false
			for _, line := range res.Header.Values("Set-Cookie") {
				if c, err := http.ParseSetCookie(line); err == nil && c.Name == session.SecureCookieName && c.MaxAge < 0 {
					expired = true
				}
			}
			if !expired {
				t.Errorf("logout did not expire the cookie; Set-Cookie: %q", res.Header.Values("Set-Cookie"))
			}
			if csd := res.Header.Get("Clear-Site-Data"); !strings.Contains(csd, `"cache"`) || !strings.Contains(csd, `"storage"`) {
				t.Errorf("logout Clear-Site-Data %q, want cache and storage cleared", csd)
			}

			replay := ts.newBrowser()
			replay.setSessionCookie(token)
			assertSignedOut(t, replay)
		})
	}
}

func TestGetLogoutOnlyAsksForConfirmation(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", "correct horse battery")
	res := b.get("/logout")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /logout status %d, want 200", res.StatusCode)
	}
	if n := res.doc(t).Find(`form[method=post][action="/logout"] button[type=submit]`).Length(); n == 0 {
		t.Error("GET /logout shows no sign-out form")
	}
	assertSignedIn(t, b, "alice")
}

func TestUnknownUserAndWrongPasswordLookAlike(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	b := ts.newBrowser()
	wrong := b.postForm("/login", url.Values{"username": {"alice"}, "password": {"wrong password!"}})
	unknown := b.postForm("/login", url.Values{"username": {"mallory"}, "password": {"wrong password!"}})
	if wrong.StatusCode != http.StatusUnauthorized || unknown.StatusCode != http.StatusUnauthorized {
		t.Fatalf("statuses %d / %d, want 401 for both", wrong.StatusCode, unknown.StatusCode)
	}
	if a, b := wrong.text(t, ".alert"), unknown.text(t, ".alert"); a != b || a != loginFailedMessage {
		t.Errorf("messages %q / %q, want both %q", a, b, loginFailedMessage)
	}
	// The pages differ only in the echoed username.
	if strings.ReplaceAll(wrong.body, "alice", "X") != strings.ReplaceAll(unknown.body, "mallory", "X") {
		t.Error("wrong-password and unknown-user pages differ beyond the echoed username")
	}
}

func TestDisabledUserCannotSignIn(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	u := ts.createUser("alice", "correct horse battery", user.RoleUser)
	if err := ts.users.SetDisabled(t.Context(), u.ID, true); err != nil {
		t.Fatal(err)
	}
	b := ts.newBrowser()
	res := b.postForm("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
	if res.StatusCode != http.StatusUnauthorized || res.text(t, "#login-error") != loginFailedMessage {
		t.Fatalf("status %d %q, want 401 with the answer a wrong password gets", res.StatusCode, res.text(t, "#login-error"))
	}
	if b.sessionCookie() != "" {
		t.Error("a disabled user got a session cookie")
	}
}

func TestLoginRedirectsOnlyToLocalNext(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	for next, want := range map[string]string{
		"/":                 "/",
		"/?tab=1":           "/?tab=1",
		"//evil.example/":   "/",
		"https://evil.test": "/",
		"/\\evil.example":   "/",
	} {
		b := ts.newBrowser()
		res := b.postForm("/login", url.Values{"username": {"alice"}, "password": {"correct horse battery"}, "next": {next}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
			t.Errorf("next=%q: %d to %q, want 303 to %q", next, res.StatusCode, res.Header.Get("Location"), want)
		}
	}
}

func TestHomeRedirectsVisitorsToLogin(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	res := ts.newBrowser().get("/")
	assertRedirect(t, res, "/login?next=%2F")
}

func TestIdleTimeoutEndsSession(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend, idle: 10 * time.Minute, lifetime: time.Hour})
			ts.createUser("alice", "correct horse battery", user.RoleUser)
			b := ts.newBrowser()
			b.login("alice", "correct horse battery")

			// Activity inside the idle window keeps the session alive.
			for range 4 {
				ts.clock.Advance(9 * time.Minute)
				assertSignedIn(t, b, "alice")
			}
			ts.clock.Advance(10 * time.Minute)
			res := assertSignedOut(t, b)
			if loc := res.Header.Get("Location"); !strings.Contains(loc, "reason=idle") {
				t.Errorf("redirect %q does not say the session idled out", loc)
			}
			login := b.get(res.Header.Get("Location"))
			if got := login.text(t, ".notice"); !strings.Contains(got, "inactivity") {
				t.Errorf("login notice %q, want an explanation of the idle sign-out", got)
			}
		})
	}
}

func TestAbsoluteLifetimeEndsActiveSession(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend, idle: 10 * time.Minute, lifetime: 30 * time.Minute})
			ts.createUser("alice", "correct horse battery", user.RoleUser)
			b := ts.newBrowser()
			b.login("alice", "correct horse battery")
			for range 3 {
				ts.clock.Advance(9 * time.Minute)
				assertSignedIn(t, b, "alice")
			}
			ts.clock.Advance(3 * time.Minute) // 30 minutes after sign-in
			res := assertSignedOut(t, b)
			if loc := res.Header.Get("Location"); !strings.Contains(loc, "reason=lifetime") {
				t.Errorf("redirect %q does not say the lifetime ended", loc)
			}
		})
	}
}

func TestCrossOriginPostIsRefused(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", signup: true})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	form := url.Values{"username": {"alice"}, "password": {"correct horse battery"}}
	for _, headers := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "https://evil.example"},
	} {
		for _, path := range []string{"/login", "/logout", "/signup"} {
			b := ts.newBrowser()
			res := b.postForm(path, form, headers...)
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %s: %s → %d, want 403", path, headers[0], headers[1], res.StatusCode)
			}
			if b.sessionCookie() != "" {
				t.Errorf("POST %s cross-origin created a session", path)
			}
		}
	}
	// A same-origin browser request passes.
	res := ts.newBrowser().postForm("/login", form, "Sec-Fetch-Site", "same-origin")
	assertRedirect(t, res, "/")
}

func TestCrossOriginLogoutKeepsSession(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", "correct horse battery")
	res := b.postForm("/logout", nil, "Sec-Fetch-Site", "cross-site")
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site logout: %d, want 403", res.StatusCode)
	}
	assertSignedIn(t, b, "alice")
}

func TestHugeFormGets413(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", signup: true})
	huge := strings.Repeat("a", 70<<10)
	for _, path := range []string{"/login", "/signup"} {
		res := ts.newBrowser().postForm(path, url.Values{"username": {"alice"}, "password": {huge}})
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s with 70 KiB: %d, want 413", path, res.StatusCode)
		}
		if got := res.text(t, "h1"); got != "Too much data" {
			t.Errorf("413 page heading %q", got)
		}
	}
}

func TestSignupValidationRerendersWith422(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", signup: true})
	ts.createUser("alice", "correct horse battery", user.RoleUser)
	for _, tc := range []struct {
		name, username, pw, confirm, field string
	}{
		{"short password", "bob", "short", "short", "password"},
		{"mismatch", "bob", "correct horse battery", "correct horse batterY", "confirm_password"},
		{"bad username", "b o b", "correct horse battery", "correct horse battery", "username"},
		{"taken username", "ALICE", "correct horse battery", "correct horse battery", "username"},
		{"too long password", "bob", strings.Repeat("p", 257), strings.Repeat("p", 257), "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := ts.newBrowser()
			res := b.postForm("/signup", url.Values{"username": {tc.username}, "password": {tc.pw}, "confirm_password": {tc.confirm}})
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", res.StatusCode)
			}
			sel := fmt.Sprintf("#%s ~ .field-error", tc.field)
			if res.doc(t).Find(sel).Length() == 0 {
				t.Errorf("no field error next to %s", tc.field)
			}
			if b.sessionCookie() != "" {
				t.Error("a failed sign-up created a session")
			}
		})
	}
}

func TestSignupRefusesAWeakPasswordAndSaysWhy(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", signup: true})
	for _, tc := range []struct{ pw, message string }{
		{"password1", "This password is too easy to guess: it is a common password or close to one. Use a longer passphrase of unrelated words."},
		{"correct horse Bob", "The password must not contain your user name."},
	} {
		t.Run(tc.pw, func(t *testing.T) {
			b := ts.newBrowser()
			res := b.postForm("/signup", url.Values{"username": {"bob"}, "password": {tc.pw}, "confirm_password": {tc.pw}})
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", res.StatusCode)
			}
			if got := res.text(t, "#password ~ .field-error"); got != tc.message {
				t.Errorf("password field error %q, want %q", got, tc.message)
			}
			if b.sessionCookie() != "" {
				t.Error("a refused sign-up created a session")
			}
		})
	}
}

func TestSignupClosedIsNotFound(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", signup: false})
	b := ts.newBrowser()
	if res := b.get("/signup"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /signup with sign-up closed: %d, want 404", res.StatusCode)
	}
	res := b.postForm("/signup", url.Values{"username": {"bob"}, "password": {"correct horse battery"}, "confirm_password": {"correct horse battery"}})
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("POST /signup with sign-up closed: %d, want 404", res.StatusCode)
	}
}

func TestNoPasswordOrTokenInLogs(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", signup: true})
	b := ts.newBrowser()
	const pw = "s3cret-passphrase-for-logs"
	b.postForm("/signup", url.Values{"username": {"alice"}, "password": {pw}, "confirm_password": {pw}})
	b.postForm("/logout", nil)
	b.postForm("/login", url.Values{"username": {"alice"}, "password": {pw + "x"}})
	b.login("alice", pw)
	token := b.sessionCookie()
	b.get("/")
	logs := ts.logs.String()
	if !strings.Contains(logs, "login succeeded") {
		t.Fatalf("logs do not record the login:\n%s", logs)
	}
	for _, secret := range []string{pw, token, hashToken(token)} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q:\n%s", secret, logs)
		}
	}
}
