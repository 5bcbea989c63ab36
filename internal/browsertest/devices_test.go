package browsertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/device"
)

// assertSentToLogin checks that b's last page view landed on the login page,
// telling why the session ended.
func assertSentToLogin(t *testing.T, b *browser, reason, notice string) {
	t.Helper()
	if got := b.text("h1"); got != "Sign in" {
		t.Fatalf("%s: next page after its session ended is %q, want the login page%s", b.dev.name, got, b.whereAmI())
	}
	if loc := b.location(); !strings.Contains(loc, "reason="+reason) {
		t.Errorf("%s: login page %s does not carry reason %s", b.dev.name, loc, reason)
	}
	if got := b.text(".notice"); got != notice {
		t.Errorf("%s: login page says %q, want %q", b.dev.name, got, notice)
	}
}

// devicesOn returns the sessions b's devices page lists: device label and
// whether it is marked as this device, keyed by public session ID.
func devicesOn(b *browser) map[string]string {
	b.t.Helper()
	b.open("/account/sessions")
	rows := eval[[][3]string](b, "read sessions", `Array.from(document.querySelectorAll("li.session"), li => [
		li.dataset.sessionId,
		li.querySelector(".session-device").firstChild.textContent.trim(),
		li.classList.contains("session-current") ? "current" : ""])`)
	got := map[string]string{}
	for _, r := range rows {
		got[r[0]] = strings.TrimSpace(r[1] + " " + r[2])
	}
	return got
}

func TestSigningOutAnotherDeviceFromTheDevicesPage(t *testing.T) {
	s := startHallpass(t, nil)
	s.addUser(t, "dana", alicePassword, false)
	mac, iphone := newBrowser(t, s, laptop), newBrowser(t, s, phone)
	mac.signIn("dana", alicePassword)
	iphone.signIn("dana", alicePassword)

	macLabel, iphoneLabel := device.Label(laptop.userAgent), device.Label(phone.userAgent)
	if macLabel != "Chrome on macOS" || iphoneLabel != "Safari on iPhone" {
		t.Fatalf("device labels %q and %q; the scenario expects Chrome on macOS and Safari on iPhone", macLabel, iphoneLabel)
	}
	sessions := devicesOn(mac)
	var iphoneID string
	for id, label := range sessions {
		if label == iphoneLabel {
			iphoneID = id
		}
	}
	if len(sessions) != 2 || iphoneID == "" || !containsValue(sessions, macLabel+" current") {
		t.Fatalf("devices page lists %v, want this %s marked current and a %s", sessions, macLabel, iphoneLabel)
	}
	if got := mac.text("li.session-current .badge"); got != "This device" {
		t.Errorf("current device badge %q, want This device", got)
	}
	// Times read as a person says them, with the exact time on hover.
	if got := mac.text("li.session-current time"); got != "just now" {
		t.Errorf("sign-in time reads %q, want just now", got)
	}
	if title := mac.attr("li.session-current time", "title"); !strings.HasSuffix(title, "UTC") {
		t.Errorf("sign-in time has title %q, want the exact time", title)
	}

	row := fmt.Sprintf(`li.session[data-session-id=%q]`, iphoneID)
	if got := mac.text(row + " button"); got != "Sign out device" {
		t.Errorf("the other device's button says %q, want Sign out device", got)
	}
	mac.click(row + " button[type=submit]")
	if got := mac.text(".notice"); got != "The device was signed out." {
		t.Errorf("after signing the iPhone out: notice %q", got)
	}
	if n := mac.count("li.session"); n != 1 {
		t.Errorf("devices page lists %d sessions after signing one out, want 1", n)
	}

	// The iPhone's open tab finds out without a click (live.js).
	waitForSignInPage(iphone, 5*time.Second)
	assertSentToLogin(t, iphone, "other-device", "You signed this device out from another device.")

	mac.click(`header a[href="/"]`)
	if got := mac.text("h1"); got != "Hello, dana" {
		t.Errorf("the Mac was signed out too: %q", got)
	}
}

func TestAdministratorSignsAUserOutEverywhere(t *testing.T) {
	s := startHallpass(t, nil)
	s.addUser(t, "root", alicePassword, true)
	s.addUser(t, "erin", bobPassword, false)
	admin, user := newBrowser(t, s, office), newBrowser(t, s, phone)
	admin.signIn("root", alicePassword)
	user.signIn("erin", bobPassword)

	admin.click(`header a[href="/admin"]`)
	admin.click(`.subnav a[href="/admin/users"]`)
	if got := admin.text(`tr[data-user="erin"] .session-count`); got != "1" {
		t.Errorf("users page: erin has %q active sessions, want 1", got)
	}
	admin.click(`tr[data-user="erin"] a`)
	if got := admin.text("h1"); got != "erin" {
		t.Fatalf("user page heading %q, want erin", got)
	}
	if got := admin.text("li.session .session-device"); got != device.Label(phone.userAgent) {
		t.Errorf("erin's session is listed as %q, want %q", got, device.Label(phone.userAgent))
	}
	admin.click(`form[action$="/revoke-all"] button[type=submit]`)
	if got := admin.text(".notice"); got != "The user was signed out everywhere." {
		t.Errorf("after signing erin out: notice %q", got)
	}
	if n := admin.count("li.session"); n != 0 {
		t.Errorf("erin still has %d sessions listed", n)
	}

	// The user's open tab is on the sign-in page by itself (live.js).
	waitForSignInPage(user, 5*time.Second)
	assertSentToLogin(t, user, "admin", "An administrator signed you out. Please sign in again.")
}

func TestSessionLimitSignsOutTheOldestDevice(t *testing.T) {
	s := startHallpass(t, map[string]string{
		"HALLPASS_MAX_SESSIONS_PER_USER": "2",
		"HALLPASS_SESSION_LIMIT_POLICY":  "evict-oldest",
	})
	s.addUser(t, "frank", alicePassword, false)
	oldest, middle, newest := newBrowser(t, s, laptop), newBrowser(t, s, office), newBrowser(t, s, phone)
	oldest.signIn("frank", alicePassword)
	middle.signIn("frank", alicePassword)
	newest.signIn("frank", alicePassword) // a third device: the laptop must go

	// The laptop's open tab is on the sign-in page by itself (live.js).
	waitForSignInPage(oldest, 5*time.Second)
	assertSentToLogin(t, oldest, "too-many-devices", "You were signed out because your account signed in on too many devices.")

	sessions := devicesOn(middle)
	want := map[string]bool{device.Label(office.userAgent) + " current": true, device.Label(phone.userAgent): true}
	if len(sessions) != 2 {
		t.Fatalf("devices page lists %v, want the office PC and the phone", sessions)
	}
	for _, label := range sessions {
		if !want[label] {
			t.Errorf("devices page lists %q; want only %v", label, want)
		}
	}
	newest.click(`header a[href="/"]`)
	if got := newest.text("h1"); got != "Hello, frank" {
		t.Errorf("the newest device was signed out: %q", got)
	}
}

func containsValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}
