package browsertest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/hallpass/hallpass/internal/testkit"
)

// Second factors and sudo mode as a person meets them: an authenticator
// app set up from the key on the page, the code asked for after the
// password, a recovery code instead of a lost phone, and a sensitive
// action that asks to confirm it is you and then goes on by itself.

// Texts of the pages these scenarios check (internal/web's mfa.go,
// sudo.go and their templates).
const (
	badCodeText     = "That code is incorrect or has already been used. Try the next code your app shows."
	sudoHeading     = "Confirm it is you"
	proofOverText   = "You will be asked to confirm it is you"
	signedInWithApp = "with password + authenticator code"
)

// totpStep is the period of the authenticator codes Hallpass asks for.
const totpStep = 30 * time.Second

// totpCode computes the code an authenticator app with secret shows at
// at, as the phone in the person's hand would.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatalf("compute the authenticator code: %v", err)
	}
	return code
}

// nextTOTPCode is a code Hallpass accepts once the current step's code has
// been used, by the enrolment a moment ago say: the next step's, which the
// server takes within its skew of one step. Waiting 30 s for it to show
// would only make the test slower.
func nextTOTPCode(t *testing.T, secret string) string {
	t.Helper()
	return totpCode(t, secret, time.Now().Add(totpStep))
}

// startTOTPEnrolment follows the security page's link to the enrolment
// page and returns the key it shows as text, without the spaces that
// group it for typing.
func (b *browser) startTOTPEnrolment() string {
	b.t.Helper()
	b.open("/account/security")
	link := `#totp a[href="/account/totp"]`
	if got := b.text(link); got != "Set up an authenticator app" {
		b.t.Fatalf("%s: the security page's authenticator link says %q%s", b.dev.name, got, b.whereAmI())
	}
	b.click(link)
	if got := b.text("h1"); got != "Set up an authenticator app" {
		b.t.Fatalf("%s: the enrolment link led to %q%s", b.dev.name, got, b.whereAmI())
	}
	secret := strings.ReplaceAll(b.text("#totp-secret"), " ", "")
	if len(secret) != 32 { // 160 bits in base32
		b.t.Fatalf("%s: the enrolment page shows the key %q, want 32 base32 letters%s", b.dev.name, secret, b.whereAmI())
	}
	return secret
}

// confirmTOTP types the app's current code into the enrolment form and
// returns the recovery codes the answer shows, once.
func (b *browser) confirmTOTP(secret string) []string {
	b.t.Helper()
	b.fill("#code", totpCode(b.t, secret, time.Now()))
	if status := b.click(`#totp-confirm button[type=submit]`); status != http.StatusOK {
		b.t.Fatalf("%s: confirming the authenticator app: status %d%s", b.dev.name, status, b.whereAmI())
	}
	if got := b.text("h1"); got != "Your recovery codes" {
		b.t.Fatalf("%s: after confirming the app the page is %q, want the recovery codes%s", b.dev.name, got, b.whereAmI())
	}
	return b.texts("#recovery-code-list li code")
}

// signInToSecondStep signs in with the password of an account that has a
// second factor, and checks the browser is asked for it.
func (b *browser) signInToSecondStep(name, password string) {
	b.t.Helper()
	b.open("/login")
	b.fill("#username", name, "#password", password)
	b.click(`form[action="/login"] button[type=submit]`)
	if loc := b.location(); !strings.HasPrefix(loc, "/login/verify") {
		b.t.Fatalf("%s: after the password the browser is at %s, want the second step%s", b.dev.name, loc, b.whereAmI())
	}
}

// verify submits code on the second-step page and returns the status of
// the page it leads to.
func (b *browser) verify(code string) int64 {
	b.t.Helper()
	b.fill("#code", code)
	return b.click(`#verify-code button[type=submit]`)
}

// waitForProofToLapse polls the security page until it says sensitive
// actions will ask again: the session's proof of sign-in is older than the
// sudo window.
func (b *browser) waitForProofToLapse(window time.Duration) {
	b.t.Helper()
	testkit.Eventually(b.t, window+stepWithin, b.dev.name+"'s proof of sign-in to lapse", func() error {
		b.open("/account/security")
		if got := b.text("#sudo-state"); got != proofOverText {
			return fmt.Errorf("the security page says %q", got)
		}
		return nil
	})
}

// confirmWithPassword answers the sudo prompt with password, and waits
// for the carried action to go on by itself (web/static/sudo.js sends it
// again) and land on a page whose path is want.
func (b *browser) confirmWithPassword(password, want string) {
	b.t.Helper()
	b.fill("#sudo-password-input", password)
	b.load("confirm with the password", chromedp.Click(chromedp.CSS(`#sudo-password button[type=submit]`), chromedp.NodeVisible))
	waitInPage[bool](b, stepWithin, "the confirmed action to go on to "+want, fmt.Sprintf(
		`location.pathname === %s && document.readyState !== "loading"`, jsString(want)))
}

func TestTwoStepSignInWithAnAuthenticatorAppAndARecoveryCode(t *testing.T) {
	s := startHallpass(t, nil)
	s.addUser(t, "grace", alicePassword, false)
	b := newBrowser(t, s, laptop)
	b.signIn("grace", alicePassword)

	// The key is read off the page, the code computed from it, as an app
	// would; the answer shows the recovery codes, once.
	secret := b.startTOTPEnrolment()
	// The QR code is drawn by Hallpass itself, so no third party sees the
	// key: an inline PNG the browser decoded, with a text alternative.
	if !strings.HasPrefix(b.attr("img.totp-qr", "src"), "data:image/png;base64,") || b.attr("img.totp-qr", "alt") == "" {
		t.Errorf("the enrolment page's QR code is not an inline PNG with a text alternative%s", b.whereAmI())
	}
	if w := eval[int](b, "decode the QR code", `document.querySelector("img.totp-qr").naturalWidth`); w == 0 {
		t.Errorf("the browser could not show the enrolment page's QR code")
	}
	codes := b.confirmTOTP(secret)
	if len(codes) != 10 {
		t.Fatalf("enrolment showed %d recovery codes, want 10%s", len(codes), b.whereAmI())
	}
	b.click(`a.button[href="/account/security"]`)
	if got := b.text("#totp .badge"); got != "On" {
		t.Errorf("after enrolment the authenticator app is %q, want On%s", got, b.whereAmI())
	}
	if got := b.text("#recovery-left"); !strings.HasPrefix(got, "10 of 10 unused") {
		t.Errorf("the security page says of recovery codes %q, want 10 of 10 unused", got)
	}

	// The password alone no longer signs in: the code of the app does.
	b.signOut()
	b.signInToSecondStep("grace", alicePassword)
	if got := b.text(`label[for="code"]`); got != "Authenticator code" {
		t.Errorf("the second step asks for %q, want Authenticator code", got)
	}
	code := nextTOTPCode(t, secret)
	if status := b.verify(code); status != http.StatusOK {
		t.Fatalf("the authenticator code ended on status %d%s", status, b.whereAmI())
	}
	if got := b.text("h1"); got != "Hello, grace" {
		t.Fatalf("after the authenticator code the page says %q%s", got, b.whereAmI())
	}
	if got := b.thisDeviceSignedInWith(); got != signedInWithApp {
		t.Errorf("the devices page says this device signed in %q, want %s", got, signedInWithApp)
	}

	// Phone lost: the code just used is refused as a replay, and a
	// recovery code signs in, once, leaving nine.
	b.signOut()
	b.signInToSecondStep("grace", alicePassword)
	if status := b.verify(code); status != http.StatusUnauthorized {
		t.Errorf("the used authenticator code again: status %d, want 401", status)
	}
	if got := b.text("#code-error"); got != badCodeText {
		t.Errorf("the used authenticator code again: the page says %q, want %q", got, badCodeText)
	}
	if status := b.verify(codes[3]); status != http.StatusOK {
		t.Fatalf("the recovery code ended on status %d%s", status, b.whereAmI())
	}
	if loc := b.location(); loc != "/account/security?used=recovery" {
		t.Errorf("after the recovery code the browser is at %s, want the security page", loc)
	}
	if got := b.text("#recovery-used"); !strings.Contains(got, "You have 9 left") {
		t.Errorf("after the recovery code the security page says %q, want that 9 are left", got)
	}
	if got := b.text("#recovery-left"); !strings.HasPrefix(got, "9 of 10 unused") {
		t.Errorf("the security page says of recovery codes %q, want 9 of 10 unused", got)
	}
	if got := b.text("#session-method"); got != "Signed in with password + recovery code" {
		t.Errorf("the security page says this session %q, want Signed in with password + recovery code", got)
	}
}

func TestSensitiveActionsAskToConfirmAndThenGoOn(t *testing.T) {
	// Short, for the test's sake, but not so short that a loaded machine
	// (CI runs every suite at once) lets it lapse between signing in and
	// the next page.
	const window = 5 * time.Second
	s := startHallpass(t, map[string]string{"HALLPASS_SUDO_WINDOW": window.String()})
	s.addUser(t, "root", alicePassword, true)
	s.addUser(t, "erin", bobPassword, false)
	admin, adminsPhone, erin := newBrowser(t, s, laptop), newBrowser(t, s, phone), newBrowser(t, s, office)
	admin.signIn("root", alicePassword)

	// Just signed in, the sign-in itself is the proof.
	admin.open("/account/security")
	if got := admin.text("#sudo-state"); !strings.HasPrefix(got, "Allowed without asking until") {
		t.Errorf("right after signing in the security page says %q, want that sensitive actions are allowed", got)
	}
	adminsPhone.signIn("root", alicePassword)
	erin.signIn("erin", bobPassword)

	// Past the window, signing out the other devices asks first; a wrong
	// password is refused and the action still waits.
	admin.waitForProofToLapse(window)
	admin.open("/account/sessions")
	revokeOthers := `form[action="/account/sessions/revoke-others"] button[type=submit]`
	if status := admin.click(revokeOthers); status != http.StatusForbidden {
		t.Errorf("signing out other devices with a lapsed proof: status %d, want 403", status)
	}
	if got := admin.text("h1"); got != sudoHeading {
		t.Fatalf("signing out other devices with a lapsed proof shows %q, want the sudo prompt%s", got, admin.whereAmI())
	}
	if n := admin.count("#sudo-code"); n != 0 {
		t.Errorf("the prompt asks an account without an authenticator app for its code")
	}
	admin.fill("#sudo-password-input", "not the password")
	if status := admin.click(`#sudo-password button[type=submit]`); status != http.StatusUnauthorized {
		t.Errorf("a wrong password at the prompt: status %d, want 401", status)
	}
	if got := admin.text("#sudo-error"); got != "Incorrect password." {
		t.Errorf("a wrong password at the prompt: the page says %q", got)
	}
	admin.confirmWithPassword(alicePassword, "/account/sessions")
	if got := admin.text(".notice"); got != "All your other devices were signed out." {
		t.Errorf("after the prompt the devices page says %q, want that the others were signed out%s", got, admin.whereAmI())
	}
	if n := admin.count("li.session"); n != 1 {
		t.Errorf("the devices page lists %d sessions after signing the others out, want 1", n)
	}
	waitForSignInPage(adminsPhone, 5*time.Second)
	assertSentToLogin(t, adminsPhone, "other-device", otherDeviceNotice)

	// The proof of the prompt lapses too; an administrator's disable is
	// carried through the prompt to its own path.
	admin.waitForProofToLapse(window)
	admin.open("/admin/users")
	admin.click(`tr[data-user="erin"] a`)
	userPage := admin.location()
	if status := admin.click(`form[action$="/disable"] button[type=submit]`); status != http.StatusForbidden {
		t.Errorf("disabling erin with a lapsed proof: status %d, want 403", status)
	}
	if got := admin.text("h1"); got != sudoHeading {
		t.Fatalf("disabling erin with a lapsed proof shows %q, want the sudo prompt%s", got, admin.whereAmI())
	}
	admin.confirmWithPassword(alicePassword, userPage)
	if got := admin.text(".notice"); got != "The user was disabled and signed out everywhere." {
		t.Errorf("after the prompt erin's page says %q, want that she was disabled%s", got, admin.whereAmI())
	}
	if got := admin.text(".title-row .badge-danger"); got != "Disabled" {
		t.Errorf("erin's page shows the badge %q, want Disabled", got)
	}
	waitForSignInPage(erin, 5*time.Second)
	assertSentToLogin(t, erin, "disabled", "Your account has been disabled.")
}
