package browsertest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

const (
	alicePassword = "correct horse battery staple"
	bobPassword   = "tr0ub4dor and three"
)

func TestSignUpFromTheLoginPageWithTheKeyboard(t *testing.T) {
	s := startHallpass(t, nil)
	b := newBrowser(t, s, laptop)

	b.open("/login")
	b.click(`a[href="/signup"]`)
	if got := b.text("h1"); got != "Create an account" {
		t.Fatalf("sign-up link led to %q", got)
	}

	// A mismatched confirmation is answered next to its field, and what
	// was typed into the username survives.
	b.fill("#username", "carol", "#password", alicePassword, "#confirm_password", alicePassword+"!")
	if status := b.click(`form[action="/signup"] button[type=submit]`); status != http.StatusUnprocessableEntity {
		t.Errorf("mismatched passwords: status %d, want 422", status)
	}
	if b.text("#confirm_password ~ .field-error") == "" {
		t.Errorf("no error next to the confirmation field%s", b.whereAmI())
	}
	if got := eval[string](b, "read username", `document.querySelector("#username").value`); got != "carol" {
		t.Errorf("username field after the error = %q, want carol", got)
	}

	// Enter in the last field submits the form: no mouse needed.
	b.fill("#password", alicePassword, "#confirm_password", alicePassword)
	// The field has the focus fill left it with (not SendKeys: see fill).
	b.load("press Enter", chromedp.KeyEvent(kb.Enter))
	if got := b.text("h1"); got != "Hello, carol" {
		t.Fatalf("after signing up the page says %q%s", got, b.whereAmI())
	}
	if got := b.text("header .who"); got != "carol" {
		t.Errorf("header names %q, want carol", got)
	}
}

func TestSignInTakesYouWhereYouWereGoing(t *testing.T) {
	s := startHallpass(t, nil)
	s.addUser(t, "alice", alicePassword, false)
	b := newBrowser(t, s, laptop)

	b.open("/account/password")
	if loc := b.location(); !strings.HasPrefix(loc, "/login?") || !strings.Contains(loc, "next=%2Faccount%2Fpassword") {
		t.Fatalf("signed-out visit to /account/password landed on %s, want the login page remembering where to go", loc)
	}

	b.fill("#username", "alice", "#password", "not the password")
	if status := b.click(`form[action="/login"] button[type=submit]`); status != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", status)
	}
	if got := b.text(".alert"); got != "Incorrect username or password." {
		t.Errorf("wrong password: alert %q", got)
	}
	if got := eval[string](b, "read username", `document.querySelector("#username").value`); got != "alice" {
		t.Errorf("username field after a wrong password = %q, want alice", got)
	}

	b.fill("#password", alicePassword)
	if status := b.click(`form[action="/login"] button[type=submit]`); status != http.StatusOK {
		t.Fatalf("sign in: status %d%s", status, b.whereAmI())
	}
	if loc := b.location(); loc != "/account/password" {
		t.Errorf("after signing in the browser is at %s, want /account/password", loc)
	}
	if got := b.text("header .who"); got != "alice" {
		t.Errorf("header names %q, want alice", got)
	}
	b.click(`header a[href="/"]`)
	if got := b.text(".served-by"); got != s.ReplicaID {
		t.Errorf("home says it was served by %q, want %q", got, s.ReplicaID)
	}
}

func TestSessionCookieAsTheBrowserKeepsIt(t *testing.T) {
	s := startHallpass(t, nil)
	s.addUser(t, "alice", alicePassword, false)
	b := newBrowser(t, s, laptop)

	b.open("/login")
	before := b.sessionCookie()
	b.signIn("alice", alicePassword)

	c := b.sessionCookie()
	if c == nil {
		t.Fatalf("no %s cookie after signing in; the browser keeps %+v", sessionCookieName, b.cookies())
	}
	if before != nil && before.Value == c.Value {
		t.Error("the session ID was not renewed at sign-in")
	}
	// The user's shard tag (two hex digits), a dot, then 32 random bytes
	// in base64url.
	if tag, random, ok := strings.Cut(c.Value, "."); !ok || len(tag) != 2 || len(random) != 43 {
		t.Errorf("session ID %d characters, want <2 hex digits>.<43 characters> (32 random bytes)", len(c.Value))
	}
	if !c.HTTPOnly {
		t.Error("cookie is not HttpOnly")
	}
	if !c.Secure {
		t.Error("cookie is not Secure")
	}
	if c.SameSite != network.CookieSameSiteLax {
		t.Errorf("cookie SameSite = %q, want Lax", c.SameSite)
	}
	// The __Host- prefix only survives with Path=/ and no Domain: the
	// browser keeps it for this host alone, not its subdomains.
	if c.Path != "/" || c.Domain != "localhost" {
		t.Errorf("cookie path %q domain %q, want / and host-only localhost", c.Path, c.Domain)
	}
	// The cookie expires at the session's absolute end (12 h by default),
	// never later; the server still decides when the session ends.
	expires := time.Unix(int64(c.Expires), 0)
	if end := time.Now().Add(12 * time.Hour); c.Session || expires.After(end.Add(5*time.Second)) || expires.Before(end.Add(-time.Minute)) {
		t.Errorf("cookie expires %v (session %v), want the session's absolute end, about %v", expires, c.Session, end)
	}

	if got := eval[string](b, "read document.cookie", `document.cookie`); strings.Contains(got, "hallpass") || strings.Contains(got, c.Value) {
		t.Errorf("page script can read the session cookie: document.cookie = %q", got)
	}

	b.click(`header form[action="/logout"] button[type=submit]`)
	if c := b.sessionCookie(); c != nil {
		t.Errorf("the browser still keeps %s=%s… after signing out", c.Name, c.Value[:8])
	}
}

func TestSignOutThenBackShowsNoSignedInPage(t *testing.T) {
	s := startHallpass(t, nil)
	s.addUser(t, "alice", alicePassword, false)
	b := newBrowser(t, s, laptop)

	b.signIn("alice", alicePassword)
	b.click(`header a[href="/account/sessions"]`)
	if got := b.text("h1"); got != "Your devices" {
		t.Fatalf("devices page says %q", got)
	}

	b.click(`header form[action="/logout"] button[type=submit]`)
	if loc := b.location(); loc != "/login?reason=signed-out" {
		t.Errorf("after signing out the browser is at %s", loc)
	}
	if got := b.text(".notice"); got != "You have signed out." {
		t.Errorf("login page notice %q, want the sign-out confirmed", got)
	}

	// Back, twice: neither the devices page nor the home page may come
	// back from a cache; each asks the server again and is sent to sign in.
	for _, was := range []string{"/account/sessions", "/"} {
		b.load("go back", chromedp.NavigateBack())
		if got := b.text("h1"); got != "Sign in" {
			t.Errorf("Back towards %s shows %q, want the login page%s", was, got, b.whereAmI())
		}
		if n := b.count(`header form[action="/logout"]`); n != 0 {
			t.Errorf("Back towards %s shows a signed-in header", was)
		}
		if body := b.text("main"); strings.Contains(body, "alice") {
			t.Errorf("Back towards %s shows alice's data: %q", was, body)
		}
	}
}

func TestSignInWithTheKeyboardAndNoJavaScript(t *testing.T) {
	s := startHallpass(t, nil)
	s.addUser(t, "alice", alicePassword, false)
	b := newBrowser(t, s, laptop)
	b.step("switch JavaScript off", chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		_, err := cdp.Call(ctx, tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))

	// The username field has focus on arrival; Tab, type, Enter signs in.
	b.open("/login")
	if got := eval[string](b, "read focus", `document.activeElement.id`); got != "username" {
		t.Fatalf("focus on arrival is on %q, want the username field", got)
	}
	b.step("type the username", chromedp.KeyEvent("alice"))
	b.step("tab to the password", chromedp.KeyEvent(kb.Tab))
	b.step("type the password", chromedp.KeyEvent(alicePassword))
	b.load("press Enter", chromedp.KeyEvent(kb.Enter))
	if got := b.text("h1"); got != "Hello, alice" {
		t.Fatalf("keyboard sign-in without JavaScript led to %q%s", got, b.whereAmI())
	}

	// The first Tab reaches the skip link, and the focus shows.
	b.step("tab", chromedp.KeyEvent(kb.Tab))
	focused := eval[[2]string](b, "read focus", `[document.activeElement.className, getComputedStyle(document.activeElement).outlineStyle]`)
	if focused[0] != "skip-link" || focused[1] == "none" {
		t.Errorf("first Tab focuses %q with outline %q, want a visible skip link", focused[0], focused[1])
	}
	b.step("follow the skip link", chromedp.KeyEvent(kb.Enter))
	if got := eval[string](b, "read focus", `document.activeElement.id`); got != "content" {
		t.Errorf("the skip link moved focus to %q, want the main content", got)
	}
	b.step("tab", chromedp.KeyEvent(kb.Tab))
	if inMain := eval[bool](b, "read focus", `document.activeElement.closest("main") !== null`); !inMain {
		t.Error("Tab after the skip link left the main content")
	}

	// Signing out is a plain form post.
	b.open("/")
	b.click(`header form[action="/logout"] button[type=submit]`)
	if got := b.text(".notice"); got != "You have signed out." {
		t.Errorf("sign-out without JavaScript: notice %q", got)
	}
}
