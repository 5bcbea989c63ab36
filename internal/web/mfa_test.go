package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

// Second factors over HTTP: enrolling an authenticator app, the second
// step of a sign-in, recovery codes, and the attacks on them.

// totpStep is how long one authenticator code lasts.
const totpStep = 30 * time.Second

// totpCode is the code an authenticator app holding secret shows at the
// test server's time.
func totpCode(t *testing.T, ts *testServer, secret string) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, ts.clock.Now(), totp.ValidateOpts{
		Period: uint(totpStep / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		t.Fatalf("TOTP code: %v", err)
	}
	return code
}

// wrongCode is a six-digit code that is not right.
func wrongCode(right string, i int) string {
	n, _ := strconv.Atoi(right)
	return fmt.Sprintf("%06d", (n+1+i)%1_000_000)
}

// enrolTOTP sets up an authenticator app for the browser's signed-in
// user as a person does: it reads the key the page shows (checking the QR
// code is there too), types in the app's code, and keeps the recovery codes
// the answer shows once. It returns the key and the codes.
func enrolTOTP(t *testing.T, b *browser) (secret string, codes []string) {
	t.Helper()
	page := b.get("/account/totp")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("GET /account/totp: %d, want 200; body:\n%.600s", page.StatusCode, page.body)
	}
	doc := page.doc(t)
	if src, _ := doc.Find("img.totp-qr").Attr("src"); !strings.HasPrefix(src, "data:image/png;base64,") {
		t.Fatalf("QR code image src %.40q, want a PNG data: URL", src)
	}
	secret = strings.ReplaceAll(strings.TrimSpace(doc.Find("#totp-secret").Text()), " ", "")
	if len(secret) != 32 {
		t.Fatalf("key shown %q, want 32 base32 characters (160 bits)", secret)
	}
	if doc.Find(`form#totp-confirm[method=post][action="/account/totp"] input[name=code]`).Length() != 1 {
		t.Fatal("the enrolment page has no confirmation form with a code field")
	}
	res := b.postForm("/account/totp", url.Values{"code": {totpCode(t, b.ts, secret)}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("confirm TOTP: %d, want 200 with the recovery codes; body:\n%.600s", res.StatusCode, res.body)
	}
	res.doc(t).Find("#recovery-code-list code").Each(func(_ int, s *goquery.Selection) {
		codes = append(codes, s.Text())
	})
	if len(codes) != account.RecoveryCodeCount {
		t.Fatalf("%d recovery codes shown, want %d", len(codes), account.RecoveryCodeCount)
	}
	return secret, codes
}

// passwordStep gives the right password and expects to be asked for the
// second factor, with the half-finished sign-in in a cookie and no
// session yet.
func passwordStep(t *testing.T, b *browser, name, pw string) {
	t.Helper()
	res := b.postForm("/login", url.Values{"username": {name}, "password": {pw}})
	assertRedirect(t, res, "/login/verify")
	if b.sessionCookie() != "" {
		t.Fatal("a session cookie was set before the second factor")
	}
	if b.pendingCookie() == nil {
		t.Fatal("no half-finished sign-in cookie after the password step")
	}
}

// pendingCookie is the browser's half-finished sign-in cookie, or nil.
func (b *browser) pendingCookie() *http.Cookie {
	u, _ := url.Parse(b.ts.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "__Host-hallpass-pending" {
			return c
		}
	}
	return nil
}

// verify sends a code to the second step.
func (b *browser) verify(code string) response {
	b.t.Helper()
	return b.postForm("/login/verify", url.Values{"code": {code}})
}

// methodOf is how the devices page says the browser's own session signed in.
func methodOf(t *testing.T, b *browser) string {
	t.Helper()
	res := b.get("/account/sessions")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /account/sessions: %d", res.StatusCode)
	}
	return strings.TrimPrefix(strings.TrimSpace(res.doc(t).Find("li.session-current .session-method").Text()), "with ")
}

func TestSignInWithAnAuthenticatorApp(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			laptop := ts.newDevice(firefoxLinux)
			assertRedirect(t, laptop.login("alice", alicePW), "/")
			if got := methodOf(t, laptop); got != "password" {
				t.Errorf("a password sign-in shows as %q, want %q", got, "password")
			}
			secret, _ := enrolTOTP(t, laptop)
			if sec := laptop.get("/account/security"); sec.doc(t).Find(`#totp form[action="/account/totp/remove"]`).Length() != 1 {
				t.Error("the security page offers no way to remove the authenticator app once set up")
			}

			// The enrolment used this period's code: sign in in the next.
			ts.clock.Advance(totpStep)
			phone := ts.newDevice(safariPhone)
			res := phone.postForm("/login", url.Values{"username": {"alice"}, "password": {alicePW}, "next": {"/account/sessions"}})
			assertRedirect(t, res, "/login/verify?next=%2Faccount%2Fsessions")
			assertPendingCookie(t, res)
			if phone.sessionCookie() != "" {
				t.Fatal("a session cookie was set before the second factor")
			}
			assertSignedOut(t, phone)
			form := phone.get(res.Header.Get("Location"))
			if form.StatusCode != http.StatusOK || form.doc(t).Find(`form[action="/login/verify"] input[name=code]`).Length() != 1 {
				t.Fatalf("GET /login/verify: %d, want 200 with a code field", form.StatusCode)
			}

			// A wrong code: refused, 401, counted and audited.
			right := totpCode(t, ts, secret)
			failed := countAudit(t, ts, audit.FactorFailed)
			res = phone.postForm("/login/verify", url.Values{"code": {wrongCode(right, 0)}, "next": {"/account/sessions"}})
			if res.StatusCode != http.StatusUnauthorized || res.text(t, ".alert") == "" {
				t.Fatalf("wrong code: %d, want 401 with a message", res.StatusCode)
			}
			if n := countAudit(t, ts, audit.FactorFailed); n != failed+1 {
				t.Errorf("%d factor failures audited after a wrong code, want %d", n, failed+1)
			}
			assertSignedOut(t, phone)

			// The right one signs in, and the session says how.
			res = phone.postForm("/login/verify", url.Values{"code": {right}, "next": {"/account/sessions"}})
			assertRedirect(t, res, "/account/sessions")
			if phone.pendingCookie() != nil {
				t.Error("the half-finished sign-in cookie outlived the sign-in")
			}
			assertSignedIn(t, phone, "alice")
			if got := methodOf(t, phone); got != "password + authenticator code" {
				t.Errorf("the phone's session shows as signed in with %q, want %q", got, "password + authenticator code")
			}

			// The same code again, in the same 30 seconds: a replay, refused.
			tablet := ts.newBrowser()
			passwordStep(t, tablet, "alice", alicePW)
			if res := tablet.verify(right); res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("the code used once, again: %d, want 401", res.StatusCode)
			}
			assertSignedOut(t, tablet)
			ts.clock.Advance(totpStep)
			assertRedirect(t, tablet.verify(totpCode(t, ts, secret)), "/")
			assertSignedIn(t, tablet, "alice")
		})
	}
}

// assertPendingCookie checks the half-finished sign-in cookie a response
// sets: host-only, secure, never for scripts or other sites, and no longer
// than the second step may take.
func assertPendingCookie(t *testing.T, res response) {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name != "__Host-hallpass-pending" {
			continue
		}
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" ||
			c.MaxAge != int(account.SecondStepTimeout/time.Second) || c.Value == "" {
			t.Errorf("pending cookie %+v, want HttpOnly, Secure, SameSite=Strict, Path=/, Max-Age=%d", c, int(account.SecondStepTimeout/time.Second))
		}
		return
	}
	t.Errorf("no __Host-hallpass-pending cookie set; Set-Cookie %q", res.Header.Values("Set-Cookie"))
}

func TestARecoveryCodeSignsInOnce(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			laptop := ts.newBrowser()
			laptop.login("alice", alicePW)
			_, codes := enrolTOTP(t, laptop)

			// The phone with the app is lost: a recovery code, as written
			// down (upper case, spaces instead of dashes, works too).
			b := ts.newDevice(chromeMac)
			passwordStep(t, b, "alice", alicePW)
			res := b.verify(strings.ToUpper(strings.ReplaceAll(codes[3], "-", " ")))
			assertRedirect(t, res, "/account/security?used=recovery")
			page := b.get(res.Header.Get("Location"))
			if got := page.text(t, "#recovery-used"); !strings.Contains(got, "9 left") {
				t.Errorf("after a recovery code the security page says %q, want it to say 9 left", got)
			}
			if got := page.text(t, "#recovery-left"); !strings.HasPrefix(got, "9 of 10") {
				t.Errorf("recovery codes count %q, want 9 of 10", got)
			}
			if got := methodOf(t, b); got != "password + recovery code" {
				t.Errorf("session shows as signed in with %q, want %q", got, "password + recovery code")
			}

			again := ts.newBrowser()
			passwordStep(t, again, "alice", alicePW)
			if res := again.verify(codes[3]); res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("a used recovery code: %d, want 401", res.StatusCode)
			}
			assertSignedOut(t, again)
			assertRedirect(t, again.verify(codes[4]), "/account/security?used=recovery")
			assertSignedIn(t, again, "alice")
		})
	}
}

func TestTheSecondStepEndsAfterFiveMinutes(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			b := ts.newBrowser()
			b.login("alice", alicePW)
			secret, _ := enrolTOTP(t, b)
			b.postForm("/logout", nil)

			ts.clock.Advance(totpStep)
			passwordStep(t, b, "alice", alicePW)
			ts.clock.Advance(account.SecondStepTimeout + time.Second)
			res := b.verify(totpCode(t, ts, secret))
			assertRedirect(t, res, "/login?reason=signin-expired")
			if b.pendingCookie() != nil {
				t.Error("the expired half-finished sign-in cookie was kept")
			}
			if notice := b.get(res.Header.Get("Location")).text(t, ".notice"); !strings.Contains(notice, "too long") {
				t.Errorf("login notice %q, want it to say the sign-in took too long", notice)
			}
			assertSignedOut(t, b)

			// Starting again works.
			passwordStep(t, b, "alice", alicePW)
			assertRedirect(t, b.verify(totpCode(t, ts, secret)), "/")
			assertSignedIn(t, b, "alice")
		})
	}
}

func TestAForgedSecondStepGoesBackToSignIn(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory"})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	b.login("alice", alicePW)
	secret, _ := enrolTOTP(t, b)
	b.postForm("/logout", nil)
	ts.clock.Advance(totpStep)

	// No half-finished sign-in at all.
	stranger := ts.newBrowser()
	assertRedirect(t, stranger.get("/login/verify"), "/login?reason=signin-expired")
	assertRedirect(t, stranger.verify(totpCode(t, ts, secret)), "/login?reason=signin-expired")

	passwordStep(t, b, "alice", alicePW)
	real := b.pendingCookie().Value
	u, _ := url.Parse(ts.URL)
	for name, forged := range map[string]string{
		"one character changed": real[:len(real)/2] + flipChar(real[len(real)/2]) + real[len(real)/2+1:],
		"truncated":             real[:len(real)-4],
		"made up":               "v1.aGVsbG8gd29ybGQ",
	} {
		t.Run(name, func(t *testing.T) {
			c := ts.newBrowser()
			c.client.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-hallpass-pending", Value: forged, Path: "/", Secure: true}})
			assertRedirect(t, c.get("/login/verify"), "/login?reason=signin-expired")
			c.client.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-hallpass-pending", Value: forged, Path: "/", Secure: true}})
			assertRedirect(t, c.verify(totpCode(t, ts, secret)), "/login?reason=signin-expired")
			assertSignedOut(t, c)
		})
	}
	// The real one still works.
	assertRedirect(t, b.verify(totpCode(t, ts, secret)), "/")
}

// flipChar is another character of the base64url alphabet.
func flipChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestParallelWrongCodesAreCheckedNoMoreThanThePolicyAllows: an attacker
// who has the password sends 40 codes at once with one half-finished
// sign-in. The account's second-factor counter lets through what the
// sign-in policy allows (5 free failures and the one that starts the wait);
// the rest are refused unchecked, and then even the right code waits.
func TestParallelWrongCodesAreCheckedNoMoreThanThePolicyAllows(t *testing.T) {
	const guesses = 40
	allowed := throttle.DefaultLoginPolicy().Limit + 1
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend})
			ts.createUser("alice", alicePW, user.RoleUser)
			owner := ts.newBrowser()
			owner.login("alice", alicePW)
			secret, _ := enrolTOTP(t, owner)
			ts.clock.Advance(totpStep)

			attacker := ts.newBrowser()
			passwordStep(t, attacker, "alice", alicePW)
			right := totpCode(t, ts, secret)
			before := countWrongCodes(t, ts)
			statuses := make(chan int, guesses)
			var wg sync.WaitGroup
			for i := range guesses {
				wg.Go(func() { statuses <- attacker.verify(wrongCode(right, i)).StatusCode })
			}
			wg.Wait()
			close(statuses)
			counts := map[int]int{}
			for s := range statuses {
				counts[s]++
			}
			if counts[http.StatusUnauthorized] > allowed || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != guesses {
				t.Errorf("statuses %v: want at most %d checked (401) and the rest refused (429)", counts, allowed)
			}
			if counts[http.StatusUnauthorized] == 0 {
				t.Errorf("statuses %v: no code was checked at all", counts)
			}
			if n := countWrongCodes(t, ts) - before; n != counts[http.StatusUnauthorized] {
				t.Errorf("%d wrong codes audited for %d checked", n, counts[http.StatusUnauthorized])
			}
			res := attacker.verify(right)
			if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
				t.Errorf("the right code during the wait: %d, want 429 with Retry-After", res.StatusCode)
			}
			assertSignedOut(t, attacker)
			t.Logf("%d parallel wrong codes: %v", guesses, counts)
		})
	}
}

// countWrongCodes counts the audited second-factor failures that checked
// a code (refusals by the throttle are audited too, sparingly).
func countWrongCodes(t *testing.T, ts *testServer) int {
	t.Helper()
	events, err := ts.audit.List(t.Context(), audit.ListOptions{Limit: 10000})
	if err != nil {
		t.Fatalf("audit list: %v", err)
	}
	n := 0
	for _, ev := range events {
		if ev.Action == audit.FactorFailed && !strings.Contains(ev.Detail, "throttled") {
			n++
		}
	}
	return n
}

// TestOneCodeSentToTwoReplicasAtOnceMakesOneSession: the same code, sent
// at the same moment to two replicas behind one Redis and one database
// (two stolen half-finished sign-ins, or a double submit), is accepted by
// exactly one of them.
func TestOneCodeSentToTwoReplicasAtOnceMakesOneSession(t *testing.T) {
	first, second := twoReplicas(t, "redis", testOptions{})
	first.createUser("alice", alicePW, user.RoleUser)
	owner := first.newBrowser()
	owner.login("alice", alicePW)
	secret, _ := enrolTOTP(t, owner)
	owner.postForm("/logout", nil)

	for round := range 5 {
		first.clock.Advance(totpStep)
		a, b := first.newBrowser(), first.newBrowser()
		passwordStep(t, a, "alice", alicePW)
		passwordStep(t, b, "alice", alicePW)
		b = b.on(second)
		code := totpCode(t, first, secret)
		var ra, rb response
		var wg sync.WaitGroup
		wg.Go(func() { ra = a.verify(code) })
		wg.Go(func() { rb = b.verify(code) })
		wg.Wait()
		won := 0
		for _, res := range []response{ra, rb} {
			switch res.StatusCode {
			case http.StatusSeeOther:
				won++
			case http.StatusUnauthorized:
			default:
				t.Fatalf("round %d: status %d, want 303 or 401", round, res.StatusCode)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of two sign-ins with one code succeeded (%d, %d), want exactly 1", round, won, ra.StatusCode, rb.StatusCode)
		}
		winner := a
		if rb.StatusCode == http.StatusSeeOther {
			winner = b
		}
		if rows := sessionRows(t, winner.get("/account/sessions")); len(rows) != 1 {
			t.Fatalf("round %d: alice has %d sessions, want 1", round, len(rows))
		}
		winner.postForm("/logout", nil)
	}
}

// TestAdminsMustEnrolBeforeAnythingElse: with HALLPASS_REQUIRE_MFA=admins,
// an administrator without a second factor is signed in to enrol one and
// nothing more; once enrolled, everything opens, and the next sign-in asks
// for the code. Users are not asked.
func TestAdminsMustEnrolBeforeAnythingElse(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ts := newTestServer(t, testOptions{backend: backend, requireMFA: account.RequireMFAAdmins})
			ts.createUser("root", alicePW, user.RoleAdmin)
			ts.createUser("alice", alicePW, user.RoleUser)

			alice := ts.newBrowser()
			assertRedirect(t, alice.login("alice", alicePW), "/")
			assertSignedIn(t, alice, "alice")

			admin := ts.newBrowser()
			assertRedirect(t, admin.login("root", alicePW), "/account/security")
			for _, path := range []string{"/admin", "/admin/users", "/", "/account/sessions", "/account/password"} {
				assertRedirect(t, admin.get(path), "/account/security")
			}
			assertRedirect(t, admin.postForm("/admin/users/2/disable", nil), "/account/security")
			if u, _ := ts.users.ByUsername(t.Context(), "alice"); u.Disabled {
				t.Fatal("a must-enrol session disabled a user")
			}
			page := admin.get("/account/security")
			if page.StatusCode != http.StatusOK || page.text(t, "#must-enrol") == "" {
				t.Fatalf("security page: %d, want 200 saying a second factor is required", page.StatusCode)
			}
			if page.doc(t).Find(`nav a[href="/account/security"]`).Length() != 1 {
				t.Error("the header has no Security link")
			}

			secret, _ := enrolTOTP(t, admin)
			if res := admin.get("/admin"); res.StatusCode != http.StatusOK {
				t.Fatalf("GET /admin after enrolling: %d, want 200", res.StatusCode)
			}
			assertSignedIn(t, admin, "root")

			// The last factor of an account that must have one stays.
			if res := admin.postForm("/account/totp/remove", nil); res.StatusCode != http.StatusConflict {
				t.Errorf("removing the only factor of an administrator: %d, want 409", res.StatusCode)
			}

			admin.postForm("/logout", nil)
			ts.clock.Advance(totpStep)
			passwordStep(t, admin, "root", alicePW)
			assertRedirect(t, admin.verify(totpCode(t, ts, secret)), "/")
			if res := admin.get("/admin"); res.StatusCode != http.StatusOK {
				t.Fatalf("GET /admin after a two-step sign-in: %d, want 200", res.StatusCode)
			}
		})
	}
}

// TestWithoutASecretKeyThereAreNoFactorPages: second factors off, sign-in
// is by password and the factor pages do not exist.
func TestWithoutASecretKeyThereAreNoFactorPages(t *testing.T) {
	ts := newTestServer(t, testOptions{backend: "memory", noFactors: true})
	ts.createUser("alice", alicePW, user.RoleUser)
	b := ts.newBrowser()
	assertRedirect(t, b.login("alice", alicePW), "/")
	for _, path := range []string{"/account/security", "/account/totp"} {
		if res := b.get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s without factors: %d, want 404", path, res.StatusCode)
		}
	}
	if b.get("/").doc(t).Find(`a[href="/account/security"]`).Length() != 0 {
		t.Error("the header links to a security page that does not exist")
	}
}
