package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// rememberPolicies are the defaults Hallpass ships: users may stay signed
// in for 30 days (7 idle), administrators may not and have stricter
// timeouts, as the example has them.
func rememberPolicies() *session.Policies {
	return &session.Policies{
		Default:       session.Policy{IdleTimeout: 30 * time.Minute, Lifetime: 12 * time.Hour},
		ByRole:        map[string]session.Policy{"admin": {IdleTimeout: 15 * time.Minute, Lifetime: 8 * time.Hour}},
		Remembered:    session.Policy{IdleTimeout: 7 * 24 * time.Hour, Lifetime: 30 * 24 * time.Hour},
		RememberRoles: []string{"user"},
	}
}

func TestKeepMeSignedIn(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend, policies: rememberPolicies()})
			ts.createUser("alice", alicePW, user.RoleUser)
			ts.createUser("root", alicePW, user.RoleAdmin)

			// The box is there, unticked, and says for how long.
			page := ts.newBrowser().get("/login")
			if !strings.Contains(page.body, `id="remember" name="remember" type="checkbox"`) || strings.Contains(page.body, "checked") {
				t.Fatalf("login page has no unticked remember box:\n%s", page.body)
			}
			if got := page.text(t, `label[for="remember"]`); got != "Keep me signed in for 30 days" {
				t.Errorf("remember label %q", got)
			}

			signIn := func(name string, remember bool) (*browser, *http.Cookie) {
				t.Helper()
				b := ts.newBrowser()
				form := url.Values{"username": {name}, "password": {alicePW}}
				if remember {
					form.Set("remember", "on")
				}
				res := b.postForm("/login", form)
				if res.StatusCode != http.StatusSeeOther {
					t.Fatalf("sign in %s: %d", name, res.StatusCode)
				}
				return b, sessionSetCookie(t, res)
			}
			// Max-Age counts from the real clock; the test clock may be
			// ahead of it (see newTestServer).
			ahead := ts.clock.Now().Sub(time.Now())
			near := func(what string, c *http.Cookie, want time.Duration) {
				t.Helper()
				want += ahead
				if got := time.Duration(c.MaxAge) * time.Second; got < want-5*time.Second || got > want+time.Second {
					t.Errorf("%s: cookie Max-Age %v, want %v", what, got, want)
				}
			}

			plain, plainCookie := signIn("alice", false)
			remembered, rememberedCookie := signIn("alice", true)
			_, adminCookie := signIn("root", true) // administrators may not stay signed in
			near("plain sign-in", plainCookie, 12*time.Hour)
			near("kept signed in", rememberedCookie, 30*24*time.Hour)
			near("administrator who ticked the box", adminCookie, 8*time.Hour)

			// The home page says how long this session may idle.
			if home := remembered.get("/"); !strings.Contains(home.body, "7 days") {
				t.Errorf("home page of a kept-signed-in session does not say it idles out after 7 days:\n%s", home.body)
			}
			if home := plain.get("/"); !strings.Contains(home.body, "30 minutes") {
				t.Errorf("home page of a plain session does not say 30 minutes:\n%s", home.body)
			}
			// The devices page marks the remembered session, and only it.
			devices := remembered.get("/account/sessions")
			if n := strings.Count(devices.body, "Kept signed in</span>"); n != 1 {
				t.Errorf("devices page shows %d kept-signed-in marks, want 1:\n%s", n, devices.body)
			}

			// An hour without activity ends the plain session, not the
			// remembered one; a week ends that too.
			ts.clock.Advance(time.Hour)
			if res := plain.get("/"); res.StatusCode != http.StatusSeeOther {
				t.Errorf("plain session after an idle hour: %d, want a redirect to sign in", res.StatusCode)
			}
			assertSignedIn(t, remembered, "alice")
			ts.clock.Advance(7*24*time.Hour + time.Minute)
			if res := remembered.get("/"); res.StatusCode != http.StatusSeeOther {
				t.Errorf("remembered session after an idle week: %d, want a redirect to sign in", res.StatusCode)
			}
		})
	}
}

func TestKeepMeSignedInIsHiddenWhenNoRoleMayUseIt(t *testing.T) {
	p := rememberPolicies()
	p.RememberRoles = nil
	ts := newTestServer(t, testOptions{backend: "memory", policies: p})
	ts.createUser("alice", alicePW, user.RoleUser)
	if page := ts.newBrowser().get("/login"); strings.Contains(page.body, `name="remember"`) {
		t.Error("login page offers to keep me signed in though no role may")
	}
	// A forged box changes nothing.
	b := ts.newBrowser()
	res := b.postForm("/login", url.Values{"username": {"alice"}, "password": {alicePW}, "remember": {"on"}})
	if got := time.Duration(sessionSetCookie(t, res).MaxAge) * time.Second; got > 12*time.Hour+time.Second {
		t.Errorf("cookie Max-Age %v with the option off, want the plain 12 h", got)
	}
}
