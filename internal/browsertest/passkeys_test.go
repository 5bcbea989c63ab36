package browsertest

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// addAuthenticator gives b's tab a virtual platform authenticator, as a
// laptop's fingerprint reader: it keeps passkeys (resident keys), verifies
// its user, and answers prompts at once.
func (b *browser) addAuthenticator() {
	b.t.Helper()
	b.step("add a virtual authenticator", chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tab, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tab, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol:                    webauthn.AuthenticatorProtocolCtap2,
				Transport:                   webauthn.AuthenticatorTransportInternal,
				HasResidentKey:              true,
				HasUserVerification:         true,
				IsUserVerified:              true,
				AutomaticPresenceSimulation: true,
			},
		})
		return err
	}))
}

// addPasskey adds a passkey named name on the security page; the first
// factor of an account shows its recovery codes, which the user saves.
func (b *browser) addPasskey(name string, first bool) {
	b.t.Helper()
	b.open("/account/security")
	b.fill("#passkey-name", name)
	if !first {
		b.load("add a passkey", chromedp.Click(chromedp.CSS(`#passkey-add button[type=submit]`), chromedp.NodeVisible))
		return
	}
	b.step("add the first passkey", chromedp.Click(chromedp.CSS(`#passkey-add button[type=submit]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#passkey-codes")))
	if n := b.count("#passkey-code-list li code"); n != 10 {
		b.t.Fatalf("%s: the first passkey showed %d recovery codes, want 10%s", b.dev.name, n, b.whereAmI())
	}
	b.click(`#passkey-codes a.button`)
}

// signOut signs out with the header's button.
func (b *browser) signOut() {
	b.t.Helper()
	b.click(`header form[action="/logout"] button[type=submit]`)
}

// thisDeviceSignedInWith returns how the devices page says this device
// signed in ("with passkey").
func (b *browser) thisDeviceSignedInWith() string {
	b.t.Helper()
	b.open("/account/sessions")
	return b.text("li.session-current .session-method")
}

func TestSigningInWithAPasskeyAndRemovingIt(t *testing.T) {
	s := startHallpass(t, nil)
	s.addUser(t, "alice", alicePassword, false)
	b := newBrowser(t, s, laptop)
	b.addAuthenticator()
	b.signIn("alice", alicePassword)

	b.addPasskey("Work laptop", true)
	if got := b.texts("#passkey-list .passkey-name"); len(got) != 1 || got[0] != "Work laptop" {
		t.Fatalf("the security page lists passkeys %q, want Work laptop%s", got, b.whereAmI())
	}
	if got := b.text("#passkey-list .passkey-created"); got != "just now" {
		t.Errorf("the passkey was added %q, want just now", got)
	}
	if got := b.text("#passkey-list .passkey-used"); got != "Never used" {
		t.Errorf("the new passkey says %q, want Never used", got)
	}

	// Signed out, the passkey alone signs in: no username, no password.
	b.signOut()
	b.open("/login")
	if status := b.load("sign in with a passkey", chromedp.Click(chromedp.CSS("#passkey-signin"), chromedp.NodeVisible)); status != 200 {
		t.Fatalf("passkey sign-in ended on status %d%s", status, b.whereAmI())
	}
	if got := b.text("h1"); got != "Hello, alice" {
		t.Fatalf("after the passkey the page says %q%s", got, b.whereAmI())
	}
	if got := b.thisDeviceSignedInWith(); got != "with passkey" {
		t.Errorf("the devices page says this device signed in %q, want with passkey", got)
	}
	b.open("/account/security")
	if got := b.text("#passkey-list .passkey-used"); !strings.HasPrefix(got, "Last used") {
		t.Errorf("after its use the passkey says %q, want Last used …", got)
	}

	// Removed, it is gone, and its sign-in fails with a message that says
	// why (the authenticator still holds it; Hallpass does not).
	b.click(`#passkey-list form[action$="/remove"] button[type=submit]`)
	if got := b.text(".notice"); got != "The passkey was removed." {
		t.Errorf("after removing, the page says %q", got)
	}
	if n := b.count("#passkey-list li"); n != 0 {
		t.Fatalf("%d passkeys listed after removing the only one%s", n, b.whereAmI())
	}
	b.signOut()
	b.open("/login")
	b.step("sign in with the removed passkey", chromedp.Click(chromedp.CSS("#passkey-signin"), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#passkey-error")))
	if got := b.text("#passkey-error"); !strings.Contains(got, "not registered") {
		t.Errorf("the removed passkey's sign-in says %q, want that it is not registered", got)
	}
	if got := b.text("h1"); got != "Sign in" {
		t.Errorf("after the refused passkey the page is %q, want the sign-in page", got)
	}
}

func TestPasswordThenPasskeyAsTheSecondFactor(t *testing.T) {
	s := startHallpass(t, nil)
	s.addUser(t, "bob", alicePassword, false)
	b := newBrowser(t, s, laptop)
	b.addAuthenticator()
	b.signIn("bob", alicePassword)
	b.addPasskey("Laptop", true)
	b.signOut()

	// The password is right; the account has a passkey, so it is asked for.
	b.open("/login")
	b.fill("#username", "bob", "#password", alicePassword)
	b.click(`form[action="/login"] button[type=submit]`)
	if loc := b.location(); !strings.HasPrefix(loc, "/login/verify") {
		t.Fatalf("after the password the browser is at %s, want the second step%s", loc, b.whereAmI())
	}
	if status := b.load("use a passkey", chromedp.Click(chromedp.CSS("#passkey-second"), chromedp.NodeVisible)); status != 200 {
		t.Fatalf("the second step ended on status %d%s", status, b.whereAmI())
	}
	if got := b.text("h1"); got != "Hello, bob" {
		t.Fatalf("after the passkey the page says %q%s", got, b.whereAmI())
	}
	if got := b.thisDeviceSignedInWith(); got != "with password + passkey" {
		t.Errorf("the devices page says this device signed in %q, want with password + passkey", got)
	}
}
