package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hallpass/hallpass/internal/device"
)

// screenshotsEnv names the directory TestScreenshots writes into; make
// screenshots sets it to docs/screenshots. Unset, the test skips.
const screenshotsEnv = "HALLPASS_SCREENSHOTS"

// android is one more device, so the lists have some variety.
var android = persona{"android", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"}

// viewport is a screen size the screenshots are taken at, and the device
// that would have it.
type viewport struct {
	name          string // the file name suffix: login-desktop.png
	who           persona
	width, height int64
	emulate       []chromedp.EmulateViewportOption
}

var viewports = []viewport{
	{"desktop", laptop, desktopWidth, desktopHeight, nil},
	{"phone", phone, phoneWidth, phoneHeight, []chromedp.EmulateViewportOption{chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch}},
}

// TestScreenshots writes a PNG of every page at desktop and phone widths,
// named after the page: docs/screenshots/login-desktop.png. It runs only
// when HALLPASS_SCREENSHOTS names the directory (make screenshots).
func TestScreenshots(t *testing.T) {
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		t.Skipf("set %s to a directory to write screenshots (make screenshots)", screenshotsEnv)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	s := startHallpass(t, map[string]string{"HALLPASS_REPLICA_ID": "app-1"})
	s.addUser(t, "alice", alicePassword, true)
	s.addUser(t, "bob", bobPassword, false)
	s.addUser(t, "carol", bobPassword, false)
	// Other devices, so the lists have something in them.
	newBrowser(t, s, office).signIn("alice", alicePassword)
	newBrowser(t, s, android).signIn("alice", alicePassword)
	newBrowser(t, s, laptop).signIn("bob", bobPassword)
	newBrowser(t, s, phone).signIn("bob", bobPassword)
	newBrowser(t, s, office).signIn("carol", bobPassword)
	wrong := newBrowser(t, s, office)
	wrong.open("/login")
	wrong.fill("#username", "carol", "#password", "not her password")
	wrong.click(`form[action="/login"] button[type=submit]`)

	// A second site, at its limit of two devices under the reject policy,
	// for the page that asks which device to sign out.
	limited := startHallpass(t, map[string]string{
		"HALLPASS_REPLICA_ID":            "app-1",
		"HALLPASS_MAX_SESSIONS_PER_USER": "2",
		"HALLPASS_SESSION_LIMIT_POLICY":  "reject",
	})
	limited.addUser(t, "alice", alicePassword, false)
	newBrowser(t, limited, office).signIn("alice", alicePassword)
	newBrowser(t, limited, android).signIn("alice", alicePassword)

	screenshot := func(b *browser, v viewport, page string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.ctx, stepWithin)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s at %s: %v", page, v.name, err)
		}
		name := filepath.Join(dir, page+"-"+v.name+".png")
		if err := os.WriteFile(name, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deviceAt := func(site *site, v viewport) *browser {
		b := newBrowser(t, site, v.who)
		b.step("emulate "+v.name, chromedp.EmulateViewport(v.width, v.height, v.emulate...))
		return b
	}

	// The idle warning, on a site whose idle timeout is short enough to
	// wait for it: it shows in the last quarter, from 12 s after the last
	// request. Both sizes are signed in first, then wait together; each as
	// its own user, so neither tab shows the other's sign-in.
	idling := startHallpass(t, map[string]string{
		"HALLPASS_REPLICA_ID":           "app-1",
		"HALLPASS_SESSION_IDLE_TIMEOUT": "16s",
	})
	idle, names := make([]*browser, len(viewports)), []string{"alice", "bob"}
	for i, v := range viewports {
		name := names[i%len(names)]
		idling.addUser(t, name, alicePassword, false)
		idle[i] = deviceAt(idling, v)
		idle[i].signIn(name, alicePassword)
	}
	for i, v := range viewports {
		waitForWarning(idle[i], time.Minute)
		screenshot(idle[i], v, "live-warning")
	}

	for _, v := range viewports {
		shoot := func(b *browser, page string) {
			t.Helper()
			screenshot(b, v, page)
		}
		at := func(site *site) *browser { return deviceAt(site, v) }

		visitor := at(s)
		visitor.open("/login")
		shoot(visitor, "login")
		visitor.open("/signup")
		shoot(visitor, "signup")
		visitor.open("/no/such/page")
		shoot(visitor, "error-404")
		visitor.open("/login")
		visitor.fill("#username", "alice", "#password", "wrong password")
		visitor.click(`form[action="/login"] button[type=submit]`)
		shoot(visitor, "login-failed")

		admin := at(s)
		adminLog := watchReplicas(admin)
		admin.signIn("alice", alicePassword)
		shoot(admin, "home")
		admin.open("/account/sessions")
		shoot(admin, "sessions")
		admin.open("/account/password")
		shoot(admin, "password")
		admin.fill("#current_password", "not it", "#new_password", "short", "#confirm_password", "short")
		admin.click(`form[action="/account/password"] button[type=submit]`)
		shoot(admin, "password-errors")
		admin.open("/logout")
		shoot(admin, "logout")
		admin.open("/admin")
		shoot(admin, "admin")
		admin.open("/admin/users")
		shoot(admin, "admin-users")
		admin.click(`tr[data-user="bob"] a`)
		shoot(admin, "admin-user")
		admin.open("/admin/audit")
		shoot(admin, "audit")
		// Last, as it adds a session to alice's lists: a sign-in on
		// another device while the home page is open.
		streams := adminLog.streamCount()
		admin.open("/")
		adminLog.waitStream(t, streams)
		newBrowser(t, s, office).signIn("alice", alicePassword)
		waitForBanner(admin, device.Label(office.userAgent))
		shoot(admin, "live-signin")

		user := at(s)
		user.signIn("carol", bobPassword)
		user.open("/admin")
		shoot(user, "error-403")

		third := at(limited)
		third.open("/login")
		third.fill("#username", "alice", "#password", alicePassword)
		third.click(`form[action="/login"] button[type=submit]`)
		shoot(third, "too-many-devices")

		signedOut := at(s)
		signedOut.signIn("bob", bobPassword)
		signedOut.click(`header form[action="/logout"] button[type=submit]`)
		shoot(signedOut, "signed-out")
	}

	// Second factors and sudo mode, on a site whose sudo window is short
	// enough to wait out yet long enough to enrol within: each size's user
	// sets up an authenticator app and a passkey, signs in again through
	// the code prompt, then meets the prompt of a sensitive action. Both
	// sizes wait for their proof to lapse together.
	const mfaWindow = 10 * time.Second
	mfa := startHallpass(t, map[string]string{
		"HALLPASS_REPLICA_ID":  "app-1",
		"HALLPASS_SUDO_WINDOW": mfaWindow.String(),
	})
	mfaUsers := []struct{ name, passkey string }{{"alice", "Work laptop"}, {"bob", "iPhone"}}
	enrolled := make([]*browser, len(viewports))
	for i, v := range viewports {
		u := mfaUsers[i%len(mfaUsers)]
		mfa.addUser(t, u.name, alicePassword, false)
		b := deviceAt(mfa, v)
		b.addAuthenticator()
		b.signIn(u.name, alicePassword)
		secret := b.startTOTPEnrolment()
		screenshot(b, v, "mfa-enrol")
		b.confirmTOTP(secret)
		b.addPasskey(u.passkey, false)
		b.signOut()
		b.signInToSecondStep(u.name, alicePassword)
		screenshot(b, v, "mfa-code-prompt")
		b.verify(nextTOTPCode(t, secret))
		b.open("/account/security")
		screenshot(b, v, "mfa-security")
		enrolled[i] = b
	}
	for i, v := range viewports {
		b := enrolled[i]
		b.waitForProofToLapse(mfaWindow)
		b.click(`form[action="/account/recovery-codes"] button[type=submit]`)
		if got := b.text("h1"); got != sudoHeading {
			t.Fatalf("new recovery codes with a lapsed proof show %q, want the sudo prompt%s", got, b.whereAmI())
		}
		screenshot(b, v, "mfa-sudo")
	}
}
