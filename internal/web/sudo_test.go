package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// Sudo mode over HTTP: sensitive actions ask the user to confirm it is
// them when their last proof is older than the window, and then go on
// where they stopped.

// pastSudoWindow is a little more than the sudo window.
const pastSudoWindow = account.DefaultSudoWindow + time.Minute

// formOf reads the named inputs of a form as the browser would send them.
func formOf(sel *goquery.Selection) url.Values {
	v := url.Values{}
	sel.Find("input[name]").Each(func(_ int, in *goquery.Selection) {
		name, _ := in.Attr("name")
		value, _ := in.Attr("value")
		v.Add(name, value)
	})
	return v
}

// sudoPrompt checks that res is the sudo prompt, 403 or status, for the
// request method+path, and returns its password form's fields.
func sudoPrompt(t *testing.T, res response, status int, method, path string) url.Values {
	t.Helper()
	if res.StatusCode != status || res.text(t, "h1") != "Confirm it is you" {
		t.Fatalf("status %d, heading %q; want %d and the sudo prompt; body:\n%.600s", res.StatusCode, res.text(t, "h1"), status, res.body)
	}
	form := res.doc(t).Find(`form#sudo-password[method=post][action="/sudo"]`)
	if form.Length() != 1 || form.Find(`input[type=password][name=password]`).Length() != 1 {
		t.Fatal("the sudo prompt has no password form")
	}
	v := formOf(form)
	if v.Get("return_method") != method || v.Get("return_to") != path {
		t.Fatalf("the prompt carries %s %s, want %s %s", v.Get("return_method"), v.Get("return_to"), method, path)
	}
	return v
}

// continueForm checks that res is the page that repeats a POST after the
// prompt (its script and, without it, its button) and returns its form.
func continueForm(t *testing.T, res response, path string) url.Values {
	t.Helper()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("right password: %d, want 200 and the page that continues; body:\n%.600s", res.StatusCode, res.body)
	}
	doc := res.doc(t)
	form := doc.Find(`form#sudo-continue[method=post]`)
	if action, _ := form.Attr("action"); action != path {
		t.Fatalf("the continue form posts to %q, want %q", action, path)
	}
	if form.Find(`button[type=submit]`).Length() != 1 {
		t.Error("the continue form has no button for browsers without script")
	}
	if doc.Find(`script[src="/static/sudo.js"]`).Length() != 1 {
		t.Error("the continue page does not load sudo.js")
	}
	return formOf(form)
}

func TestAdminActionsAskToConfirmAfterTenMinutes(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("root", alicePW, user.RoleAdmin)
			alice := ts.createUser("alice", alicePW, user.RoleUser)
			disable := "/admin/users/" + strconv.FormatInt(alice.ID, 10) + "/disable"
			enable := "/admin/users/" + strconv.FormatInt(alice.ID, 10) + "/enable"
			isDisabled := func() bool {
				u, err := ts.users.ByID(t.Context(), alice.ID)
				if err != nil {
					t.Fatal(err)
				}
				return u.Disabled
			}

			admin := ts.newBrowser()
			admin.login("root", alicePW)
			ts.clock.Advance(11 * time.Minute)

			// The action is refused with the prompt, which carries it: its
			// fields but never a password.
			res := admin.postForm(disable, url.Values{"note": {"left the company"}, "password": {"not to be echoed"}})
			prompt := sudoPrompt(t, res, http.StatusForbidden, http.MethodPost, disable)
			if prompt.Get("orig.note") != "left the company" || prompt.Has("orig.password") {
				t.Errorf("the prompt carries %v, want the note and no password", prompt)
			}
			if isDisabled() {
				t.Fatal("the user was disabled without a fresh proof")
			}
			assertSignedIn(t, admin, "root")

			// A wrong password: the prompt again, carrying the same request.
			prompt.Set("password", "not my password")
			res = admin.postForm("/sudo", prompt)
			again := sudoPrompt(t, res, http.StatusUnauthorized, http.MethodPost, disable)
			if res.text(t, "#sudo-error") == "" || again.Get("orig.note") != "left the company" {
				t.Errorf("wrong password: error %q, fields %v", res.text(t, "#sudo-error"), again)
			}
			if isDisabled() {
				t.Fatal("a wrong password disabled the user")
			}

			// The right one: the page that repeats the action, as sudo.js
			// or its button sends it.
			again.Set("password", alicePW)
			cont := continueForm(t, admin.postForm("/sudo", again), disable)
			if cont.Get("note") != "left the company" || cont.Has("password") {
				t.Errorf("the continue form sends %v, want the original fields without the password", cont)
			}
			assertRedirect(t, admin.postForm(disable, cont), "/admin/users/"+strconv.FormatInt(alice.ID, 10)+"?done=disabled")
			if !isDisabled() {
				t.Fatal("the user is not disabled after the confirmed action")
			}

			// Within the window, no prompt.
			assertRedirect(t, admin.postForm(enable, nil), "/admin/users/")
			ts.clock.Advance(9 * time.Minute)
			assertRedirect(t, admin.postForm(disable, nil), "/admin/users/")
			ts.clock.Advance(2 * time.Minute)
			sudoPrompt(t, admin.postForm(enable, nil), http.StatusForbidden, http.MethodPost, enable)
			if !isDisabled() {
				t.Fatal("the user was enabled without a fresh proof")
			}
		})
	}
}

func TestSigningOutOtherDevicesAsksToConfirmAfterTenMinutes(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			laptop, phone := ts.newDevice(firefoxLinux), ts.newDevice(safariPhone)
			laptop.login("alice", alicePW)
			phone.login("alice", alicePW)
			ts.clock.Advance(pastSudoWindow)

			const path = "/account/sessions/revoke-others"
			prompt := sudoPrompt(t, laptop.postForm(path, nil), http.StatusForbidden, http.MethodPost, path)
			assertSignedIn(t, phone, "alice")
			prompt.Set("password", alicePW)
			cont := continueForm(t, laptop.postForm("/sudo", prompt), path)
			assertRedirect(t, laptop.postForm(path, cont), "/account/sessions?done=revoked-others")
			assertEndedWith(t, phone, session.EndedFromOtherDevice)
			assertSignedIn(t, laptop, "alice")
		})
	}
}

// TestSignOutEveryoneKeepsItsConfirmationThroughThePrompt: the box ticked
// on the form is carried through the prompt, so the confirmed request is
// the one the administrator sent.
func TestSignOutEveryoneKeepsItsConfirmationThroughThePrompt(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("root", alicePW, user.RoleAdmin)
	ts.createUser("alice", alicePW, user.RoleUser)
	admin, alice := ts.newBrowser(), ts.newBrowser()
	admin.login("root", alicePW)
	alice.login("alice", alicePW)
	ts.clock.Advance(pastSudoWindow)
	alice.get("/") // active, so only sudo mode has run out

	const path = "/admin/sign-out-everyone"
	prompt := sudoPrompt(t, admin.postForm(path, url.Values{"confirm": {"yes"}}), http.StatusForbidden, http.MethodPost, path)
	assertSignedIn(t, alice, "alice")
	prompt.Set("password", alicePW)
	cont := continueForm(t, admin.postForm("/sudo", prompt), path)
	if cont.Get("confirm") != "yes" {
		t.Fatalf("the continue form sends %v, want confirm=yes", cont)
	}
	assertRedirect(t, admin.postForm(path, cont), "/admin?done=everyone")
	assertEndedWith(t, alice, session.EndedEveryone)
}

// TestAPageBehindSudoModeOpensAfterTheCode: a GET that needs a fresh proof
// (setting up an authenticator app) comes back by redirect after the
// prompt; a user with an authenticator app may confirm with its code.
func TestAPageBehindSudoModeOpensAfterTheCode(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			b := ts.newBrowser()
			b.login("alice", alicePW)
			secret, _ := enrolTOTP(t, b)
			ts.clock.Advance(pastSudoWindow)

			res := b.get("/account/totp?new=1")
			sudoPrompt(t, res, http.StatusForbidden, http.MethodGet, "/account/totp?new=1")
			codeForm := res.doc(t).Find(`form#sudo-code[action="/sudo"]`)
			if codeForm.Find(`input[name=code]`).Length() != 1 {
				t.Fatal("the prompt of a user with an authenticator app asks for no code")
			}
			v := formOf(codeForm)
			v.Set("code", wrongCode(totpCode(t, ts, secret), 0))
			if res := b.postForm("/sudo", v); res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("a wrong code at the prompt: %d, want 401", res.StatusCode)
			}
			v.Set("code", totpCode(t, ts, secret))
			assertRedirect(t, b.postForm("/sudo", v), "/account/totp?new=1")
			if res := b.get("/account/totp"); res.StatusCode != http.StatusOK || res.doc(t).Find("#totp-secret").Length() != 1 {
				t.Fatalf("GET /account/totp after the prompt: %d, want the enrolment page", res.StatusCode)
			}
			if got := b.get("/account/security").text(t, "#sudo-state"); !strings.HasPrefix(got, "Allowed") {
				t.Errorf("the security page says %q of sensitive actions, want them allowed for now", got)
			}
		})
	}
}

// TestTheSudoPromptIsThrottledLikeSignIn: a stolen session cookie buys no
// extra password guesses.
func TestTheSudoPromptIsThrottledLikeSignIn(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	ts.clock.Advance(pastSudoWindow)
	prompt := sudoPrompt(t, b.postForm("/account/sessions/revoke-others", nil), http.StatusForbidden,
		http.MethodPost, "/account/sessions/revoke-others")
	statuses := map[int]int{}
	for i := range 8 {
		prompt.Set("password", "guess "+strconv.Itoa(i))
		statuses[b.postForm("/sudo", prompt).StatusCode]++
	}
	if statuses[http.StatusUnauthorized] > 6 || statuses[http.StatusTooManyRequests] == 0 {
		t.Errorf("8 wrong passwords at the prompt: %v, want at most 6 checked and then 429", statuses)
	}
	prompt.Set("password", alicePW)
	if res := b.postForm("/sudo", prompt); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right password during the wait: %d, want 429", res.StatusCode)
	}
}
