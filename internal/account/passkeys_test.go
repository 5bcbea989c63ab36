package account_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/user"
)

// The rig's relying party: passkeys of localhost, used from testOrigin.
const (
	testRPID   = "localhost"
	testOrigin = "http://localhost:8080"
)

func testWebAuthn(t *testing.T) *webauthn.WebAuthn {
	t.Helper()
	w, err := account.NewWebAuthn(testRPID, []string{testOrigin}, "Hallpass test")
	if err != nil {
		t.Fatalf("relying party: %v", err)
	}
	return w
}

func TestTheRelyingPartyIsCheckedAtStartUp(t *testing.T) {
	for _, tc := range []struct {
		rpID    string
		origins []string
		ok      bool
	}{
		{"localhost", []string{"http://localhost:8080"}, true},
		{"example.com", []string{"https://example.com", "https://login.example.com:8443"}, true},
		{"example.com", []string{"http://example.com"}, false},              // http off localhost
		{"example.com", []string{"https://example.org"}, false},             // another domain
		{"example.com", []string{"https://badexample.com"}, false},          // not a subdomain
		{"login.example.com", []string{"https://example.com"}, false},       // a parent, not a subdomain
		{"example.com", []string{"https://example.com/login"}, false},       // a path is no origin
		{"127.0.0.1", []string{"http://127.0.0.1:8080"}, false},             // an address is no RP ID
		{"example.com:443", []string{"https://example.com"}, false},         // nor a host:port
		{"example.com", nil, false},                                         // no origin
		{"localhost", []string{"http://app.localhost:8080"}, true},          // a subdomain of localhost
		{"example.com", []string{"ftp://example.com"}, false},               // a scheme browsers do not run passkeys on
		{"example.com", []string{"https://user@example.com"}, false},        // credentials are no origin
		{"example.com", []string{"https://example.com?x=1"}, false},         // nor a query
		{"example.com", []string{"https://EXAMPLE.com"}, true},              // hosts compare case-blind
		{"", []string{"https://example.com"}, false},                        // no RP ID
		{"example.com", []string{"https://example.com", "http://x"}, false}, // every origin counts
	} {
		_, err := account.NewWebAuthn(tc.rpID, tc.origins, "")
		if (err == nil) != tc.ok {
			t.Errorf("NewWebAuthn(%q, %q): %v, want ok %v", tc.rpID, tc.origins, err, tc.ok)
		}
	}
}

// authenticator is a platform authenticator in software: one P-256 key per
// passkey, "none" attestation, the user always verified — what a laptop's
// fingerprint reader does, answering at testOrigin.
type authenticator struct {
	t *testing.T
}

// softPasskey is a passkey the authenticator holds.
type softPasskey struct {
	id     []byte
	handle []byte
	key    *ecdsa.PrivateKey
	count  uint32
	// counterless keeps the signature counter at zero, as synced passkeys
	// do.
	counterless bool
}

// options is what the authenticator reads of the server's options.
type options struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		RPID string `json:"rpId"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
		UserVerification string `json:"userVerification"`
	} `json:"publicKey"`
}

var b64 = base64.RawURLEncoding

func (a authenticator) readOptions(raw []byte) options {
	a.t.Helper()
	var o options
	if err := json.Unmarshal(raw, &o); err != nil {
		a.t.Fatalf("authenticator: options: %v", err)
	}
	return o
}

// clientData is the browser's clientDataJSON for a ceremony.
func clientData(kind, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": kind, "challenge": challenge, "origin": testOrigin, "crossOrigin": false})
	return b
}

// Authenticator data flags.
const (
	flagUserPresent  = 0x01
	flagUserVerified = 0x04
	flagAttested     = 0x40
)

// create makes a passkey for the options of BeginPasskeyRegistration and
// returns it with the browser's answer.
func (a authenticator) create(raw []byte) (*softPasskey, []byte) {
	a.t.Helper()
	o := a.readOptions(raw)
	handle, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		a.t.Fatalf("authenticator: user ID: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		a.t.Fatal(err)
	}
	p := &softPasskey{id: []byte(rand.Text()), handle: handle, key: key}
	point, err := key.PublicKey.Bytes() // 0x04 ‖ X ‖ Y
	if err != nil {
		a.t.Fatal(err)
	}
	coseKey := cborMap(
		cborInt(1), cborInt(2), // kty: EC2
		cborInt(3), cborInt(-7), // alg: ES256
		cborInt(-1), cborInt(1), // crv: P-256
		cborInt(-2), cborBytes(point[1:33]),
		cborInt(-3), cborBytes(point[33:65]),
	)
	rpHash := sha256.Sum256([]byte(o.PublicKey.RP.ID))
	auth := append(rpHash[:], flagUserPresent|flagUserVerified|flagAttested)
	auth = binary.BigEndian.AppendUint32(auth, p.count)
	auth = append(auth, make([]byte, 16)...) // AAGUID: none
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(p.id)))
	auth = append(auth, p.id...)
	auth = append(auth, coseKey...)
	attestation := cborMap(
		cborText("fmt"), cborText("none"),
		cborText("attStmt"), cborMap(),
		cborText("authData"), cborBytes(auth),
	)
	answer, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(p.id), "rawId": b64.EncodeToString(p.id), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData("webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": b64.EncodeToString(attestation),
			"transports":        []string{"internal"},
		},
	})
	return p, answer
}

// get answers the options of an assertion with p, whether or not the
// options allow it (a malicious or confused client might).
func (a authenticator) get(raw []byte, p *softPasskey) []byte {
	a.t.Helper()
	o := a.readOptions(raw)
	if !p.counterless {
		p.count++
	}
	rpHash := sha256.Sum256([]byte(o.PublicKey.RPID))
	auth := append(rpHash[:], flagUserPresent|flagUserVerified)
	auth = binary.BigEndian.AppendUint32(auth, p.count)
	cd := clientData("webauthn.get", o.PublicKey.Challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, auth...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, p.key, digest[:])
	if err != nil {
		a.t.Fatal(err)
	}
	answer, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(p.id), "rawId": b64.EncodeToString(p.id), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"authenticatorData": b64.EncodeToString(auth),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(p.handle),
		},
	})
	return answer
}

// The little CBOR the authenticator writes (RFC 8949): unsigned and
// negative integers, byte and text strings, maps.
func cborHead(major byte, n uint64) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n < 1<<8:
		return []byte{major<<5 | 24, byte(n)}
	default:
		return binary.BigEndian.AppendUint16([]byte{major<<5 | 25}, uint16(n))
	}
}

func cborInt(i int64) []byte {
	if i >= 0 {
		return cborHead(0, uint64(i))
	}
	return cborHead(1, uint64(-1-i))
}
func cborBytes(b []byte) []byte { return append(cborHead(2, uint64(len(b))), b...) }
func cborText(s string) []byte  { return append(cborHead(3, uint64(len(s))), s...) }
func cborMap(kv ...[]byte) []byte {
	out := cborHead(5, uint64(len(kv)/2))
	for _, b := range kv {
		out = append(out, b...)
	}
	return out
}

// addPasskey registers a passkey named name for u, signed in on b, and
// returns it with the recovery codes shown.
func (b *browser) addPasskey(u user.User, name string) (*softPasskey, []string) {
	b.t.Helper()
	var (
		key   *softPasskey
		codes []string
		err   error
	)
	var c account.PasskeyCeremony
	b.do(func(ctx context.Context) { c, err = b.rig.svc.BeginPasskeyRegistration(ctx, b.as(u), name) })
	if err != nil {
		b.t.Fatalf("%s begins adding a passkey: %v", u.Username, err)
	}
	key, answer := authenticator{b.t}.create(c.Options)
	b.do(func(ctx context.Context) {
		codes, err = b.rig.svc.FinishPasskeyRegistration(ctx, b.as(u), c.State, answer)
	})
	if err != nil {
		b.t.Fatalf("%s adds a passkey: %v", u.Username, err)
	}
	return key, codes
}

// beginPasskeySignIn asks for the options of a passkey sign-in on b: with
// pending, the second step of that password sign-in.
func (b *browser) beginPasskeySignIn(pending string) account.PasskeyCeremony {
	b.t.Helper()
	var (
		c   account.PasskeyCeremony
		err error
	)
	b.do(func(ctx context.Context) {
		c, err = b.rig.svc.BeginPasskeySignIn(ctx, b.visitor(), pending, account.SignInOptions{})
	})
	if err != nil {
		b.t.Fatalf("passkey sign-in options: %v", err)
	}
	return c
}

// finishPasskeySignIn sends the authenticator's answer.
func (b *browser) finishPasskeySignIn(pending, state string, answer []byte) (done account.SignedIn, err error) {
	b.t.Helper()
	b.do(func(ctx context.Context) {
		done, err = b.rig.svc.FinishPasskeySignIn(ctx, b.visitor(), pending, state, answer)
	})
	return done, err
}

// passkeySignIn signs in on b with key, as the browser does: options, the
// authenticator, the answer.
func (b *browser) passkeySignIn(pending string, key *softPasskey) (account.SignedIn, error) {
	b.t.Helper()
	c := b.beginPasskeySignIn(pending)
	return b.finishPasskeySignIn(pending, c.State, authenticator{b.t}.get(c.Options, key))
}

// passkeysOf lists u's stored passkeys.
func (r *rig) passkeysOf(u user.User) []factor.Passkey {
	r.t.Helper()
	keys, err := r.factors.Passkeys(context.Background(), u.ID)
	if err != nil {
		r.t.Fatal(err)
	}
	return keys
}

func TestAPasskeySignsInWithoutAUsernameOrPassword(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	key, codes := laptop.addPasskey(alice, "  Work laptop ")
	if len(codes) != account.RecoveryCodeCount {
		t.Errorf("the first factor came with %d recovery codes, want %d", len(codes), account.RecoveryCodeCount)
	}
	keys := r.passkeysOf(alice)
	if len(keys) != 1 || keys[0].Name != "Work laptop" || !keys[0].CreatedAt.Equal(r.clock.Now()) || !keys[0].LastUsedAt.IsZero() {
		t.Fatalf("stored passkeys %+v, want one named Work laptop, created now, never used", keys)
	}
	if ev := r.lastEvent(audit.FactorAdded); ev.TargetUserID != alice.ID {
		t.Errorf("factor.added names user %d", ev.TargetUserID)
	}
	if !hasEvent(r, audit.FactorAdded, "passkey Work laptop") {
		t.Error("no factor.added record for the passkey")
	}

	r.clock.Advance(time.Minute)
	phone := r.newBrowser("192.0.2.2")
	done, err := phone.passkeySignIn("", key)
	if err != nil {
		t.Fatalf("passkey sign-in: %v", err)
	}
	info, signedIn, _ := phone.whoami()
	if !signedIn || info.UserID != alice.ID || info.Method != account.MethodPasskey || done.Method != account.MethodPasskey {
		t.Fatalf("after the passkey: signed in %v as %d, method %q (result %q)", signedIn, info.UserID, info.Method, done.Method)
	}
	if used := r.passkeysOf(alice)[0].LastUsedAt; !used.Equal(r.clock.Now()) {
		t.Errorf("last used %v, want now", used)
	}
	if ev := r.lastEvent(audit.LoginSucceeded); ev.TargetUserID != alice.ID || !strings.Contains(ev.Detail, "passkey") {
		t.Errorf("login.succeeded %+v, want alice by passkey", ev)
	}
	if !hasEvent(r, audit.FactorUsed, "passkey sign-in: passkey Work laptop") {
		t.Error("no factor.used record for the passkey")
	}
	// A second passkey does not bring new codes.
	if _, codes := laptop.addPasskey(alice, ""); codes != nil {
		t.Errorf("a second factor came with %d new recovery codes", len(codes))
	}
	if keys := r.passkeysOf(alice); len(keys) != 2 || keys[1].Name != account.DefaultPasskeyName {
		t.Errorf("an unnamed passkey is stored as %+v, want %q", keys, account.DefaultPasskeyName)
	}
}

func TestPasswordThenPasskeySignsIn(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	key, _ := laptop.addPasskey(alice, "Laptop")

	phone := r.newBrowser("192.0.2.2")
	token := phone.passwordStep(alice)
	if _, signedIn, _ := phone.whoami(); signedIn {
		t.Fatal("the password alone signed the phone in")
	}
	c := phone.beginPasskeySignIn(token)
	var o options
	if err := json.Unmarshal(c.Options, &o); err != nil || len(o.PublicKey.AllowCredentials) != 1 ||
		o.PublicKey.AllowCredentials[0].ID != b64.EncodeToString(key.id) || o.PublicKey.UserVerification != "required" {
		t.Fatalf("second-step options %s: want alice's one passkey allowed, user verification required", c.Options)
	}
	done, err := phone.finishPasskeySignIn(token, c.State, authenticator{t}.get(c.Options, key))
	if err != nil {
		t.Fatalf("second step with the passkey: %v", err)
	}
	info, signedIn, _ := phone.whoami()
	if !signedIn || info.Method != account.MethodPasswordPasskey || done.Method != account.MethodPasswordPasskey {
		t.Fatalf("after the passkey: signed in %v, method %q (result %q)", signedIn, info.Method, done.Method)
	}
}

func TestAPasskeyPromptExpiresAndCannotBeForgedOrReused(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	key, _ := laptop.addPasskey(alice, "Laptop")
	phone := r.newBrowser("192.0.2.2")

	c := phone.beginPasskeySignIn("")
	answer := authenticator{t}.get(c.Options, key)
	forged := c.State[:len(c.State)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(c.State, "AA")]
	if _, err := phone.finishPasskeySignIn("", forged, answer); !errors.Is(err, account.ErrPasskeyExpired) {
		t.Errorf("a tampered state: %v, want ErrPasskeyExpired", err)
	}
	if _, err := phone.finishPasskeySignIn("", "", answer); !errors.Is(err, account.ErrPasskeyExpired) {
		t.Errorf("no state: %v, want ErrPasskeyExpired", err)
	}
	if _, err := phone.finishPasskeySignIn("", c.State, []byte(`{"id":`)); !errors.Is(err, account.ErrInvalid) {
		t.Errorf("a malformed answer: %v, want ErrInvalid", err)
	}
	// The answer to another prompt's challenge.
	other := phone.beginPasskeySignIn("")
	if _, err := phone.finishPasskeySignIn("", other.State, answer); !errors.Is(err, account.ErrPasskeyRefused) {
		t.Errorf("an answer to another challenge: %v, want ErrPasskeyRefused", err)
	}
	// A sudo prompt's state cannot finish a sign-in.
	var sudo account.PasskeyCeremony
	var err error
	laptop.do(func(ctx context.Context) { sudo, err = r.svc.BeginPasskeySudo(ctx, laptop.as(alice)) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := phone.finishPasskeySignIn("", sudo.State, authenticator{t}.get(sudo.Options, key)); !errors.Is(err, account.ErrPasskeyExpired) {
		t.Errorf("a sudo state for a sign-in: %v, want ErrPasskeyExpired", err)
	}
	r.clock.Advance(account.CeremonyTimeout)
	if _, err := phone.finishPasskeySignIn("", c.State, answer); !errors.Is(err, account.ErrPasskeyExpired) {
		t.Errorf("a state %s old: %v, want ErrPasskeyExpired", account.CeremonyTimeout, err)
	}
	if _, signedIn, _ := phone.whoami(); signedIn {
		t.Fatal("the phone is signed in")
	}
}

func TestAnotherUsersPasskeyCannotFinishASignIn(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	bob := r.createUser("bob", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	aliceKey, _ := laptop.addPasskey(alice, "Alice's laptop")
	desk := r.newBrowser("192.0.2.3")
	desk.mustSignIn(bob)
	desk.addPasskey(bob, "Bob's desk")

	// Alice knows bob's password, and answers his second step with her
	// own passkey.
	token := laptop.passwordStep(bob)
	c := laptop.beginPasskeySignIn(token)
	if _, err := laptop.finishPasskeySignIn(token, c.State, authenticator{t}.get(c.Options, aliceKey)); !errors.Is(err, account.ErrPasskeyUnknown) {
		t.Fatalf("bob's second step with alice's passkey: %v, want ErrPasskeyUnknown", err)
	}
	if ev := r.lastEvent(audit.FactorFailed); ev.TargetUserID != bob.ID {
		t.Errorf("factor.failed names user %d, want bob", ev.TargetUserID)
	}
	// Nor does a second-step prompt of alice's finish bob's sign-in.
	aliceToken := r.newBrowser("192.0.2.4").passwordStep(alice)
	c = laptop.beginPasskeySignIn(aliceToken)
	if _, err := laptop.finishPasskeySignIn(token, c.State, authenticator{t}.get(c.Options, aliceKey)); !errors.Is(err, account.ErrPasskeyExpired) {
		t.Fatalf("alice's prompt for bob's sign-in: %v, want ErrPasskeyExpired", err)
	}
	info, _, _ := laptop.whoami()
	if info.UserID != alice.ID {
		t.Fatalf("the laptop is signed in as user %d, want alice still", info.UserID)
	}
}

func TestADisabledAccountCannotSignInWithAPasskey(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	key, _ := laptop.addPasskey(alice, "Laptop")
	if _, _, err := r.svc.SetDisabled(context.Background(), account.CommandLine(), alice.ID, true); err != nil {
		t.Fatal(err)
	}
	phone := r.newBrowser("192.0.2.2")
	if _, err := phone.passkeySignIn("", key); !errors.Is(err, account.ErrDisabled) {
		t.Fatalf("a disabled account's passkey: %v, want ErrDisabled", err)
	}
	if _, signedIn, _ := phone.whoami(); signedIn {
		t.Fatal("the disabled account is signed in")
	}
	if ev := r.lastEvent(audit.LoginFailed); ev.TargetUserID != alice.ID || !strings.Contains(ev.Detail, "disabled") {
		t.Errorf("login.failed %+v, want alice, disabled", ev)
	}
}

func TestAPasskeyWhoseCounterGoesBackwardsIsRefused(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	key, _ := laptop.addPasskey(alice, "Laptop")
	phone := r.newBrowser("192.0.2.2")
	if _, err := phone.passkeySignIn("", key); err != nil {
		t.Fatal(err)
	}
	// A copy of the key, made before that use, signs with the old count.
	clone := *key
	clone.count = 0
	thief := r.newBrowser("198.51.100.7")
	if _, err := thief.passkeySignIn("", &clone); !errors.Is(err, account.ErrPasskeyRefused) {
		t.Fatalf("a cloned passkey: %v, want ErrPasskeyRefused", err)
	}
	if _, signedIn, _ := thief.whoami(); signedIn {
		t.Fatal("the clone signed in")
	}
	if !hasEvent(r, audit.FactorFailed, "counter went backwards") {
		t.Error("no factor.failed record of the clone")
	}
	// The original goes on.
	if _, err := r.newBrowser("192.0.2.5").passkeySignIn("", key); err != nil {
		t.Fatalf("the original after the clone was refused: %v", err)
	}
}

func TestARemovedPasskeyNoLongerSignsIn(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	key, _ := laptop.addPasskey(alice, "Laptop")
	id := r.passkeysOf(alice)[0].ID

	var err error
	laptop.do(func(ctx context.Context) { err = r.svc.RemovePasskey(ctx, laptop.as(alice), id+1000) })
	if !errors.Is(err, account.ErrNotFound) {
		t.Errorf("removing a passkey alice does not have: %v, want ErrNotFound", err)
	}
	laptop.do(func(ctx context.Context) { err = r.svc.RemovePasskey(ctx, laptop.as(alice), id) })
	if err != nil {
		t.Fatalf("remove: %v", err)
	}
	if keys := r.passkeysOf(alice); len(keys) != 0 {
		t.Fatalf("after removal: %+v", keys)
	}
	if !hasEvent(r, audit.FactorRemoved, "passkey Laptop") {
		t.Error("no factor.removed record")
	}
	sum, err := r.factors.Summary(context.Background(), alice.ID)
	if err != nil || sum.RecoveryCodesLeft != 0 {
		t.Errorf("with no factor left, %d recovery codes remain (%v)", sum.RecoveryCodesLeft, err)
	}
	if _, err := r.newBrowser("192.0.2.2").passkeySignIn("", key); !errors.Is(err, account.ErrPasskeyUnknown) {
		t.Fatalf("sign-in with the removed passkey: %v, want ErrPasskeyUnknown", err)
	}
}

func TestTheLastPasskeyStaysWhenThePolicyRequiresAFactor(t *testing.T) {
	r := newRig(t, rigOptions{requireMFA: account.RequireMFAAll})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	// She must enrol first: a passkey is a factor, and ends that.
	laptop.addPasskey(alice, "Laptop")
	if info, _, _ := laptop.whoami(); info.MustEnrol {
		t.Fatal("the session must still enrol after adding a passkey")
	}
	laptop.addPasskey(alice, "Phone")
	keys := r.passkeysOf(alice)
	var err error
	laptop.do(func(ctx context.Context) { err = r.svc.RemovePasskey(ctx, laptop.as(alice), keys[0].ID) })
	if err != nil {
		t.Fatalf("removing one of two passkeys: %v", err)
	}
	laptop.do(func(ctx context.Context) { err = r.svc.RemovePasskey(ctx, laptop.as(alice), keys[1].ID) })
	if !errors.Is(err, account.ErrFactorRequired) {
		t.Fatalf("removing the last: %v, want ErrFactorRequired", err)
	}
}

func TestARevocationAfterThePasskeyPromptVoidsTheSignIn(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	key, _ := laptop.addPasskey(alice, "Laptop")

	phone := r.newBrowser("192.0.2.2")
	c := phone.beginPasskeySignIn("")
	r.clock.Advance(time.Second)
	if _, err := r.svc.EndAllSessions(context.Background(), account.CommandLine(), alice.ID); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Second)
	if _, err := phone.finishPasskeySignIn("", c.State, authenticator{t}.get(c.Options, key)); !errors.Is(err, account.ErrRevokedInFlight) {
		t.Fatalf("a passkey answer to a prompt from before sign out everywhere: %v, want ErrRevokedInFlight", err)
	}
}

func TestAPasskeyProvesTheSignInForSudoMode(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	key, _ := laptop.addPasskey(alice, "Laptop")
	r.clock.Advance(r.svc.SudoWindow())

	var err error
	laptop.do(func(ctx context.Context) { _, err = r.svc.BeginPasskeyRegistration(ctx, laptop.as(alice), "Another") })
	if !errors.Is(err, account.ErrReauthRequired) {
		t.Fatalf("adding a passkey %s after signing in: %v, want ErrReauthRequired", r.svc.SudoWindow(), err)
	}
	var c account.PasskeyCeremony
	laptop.do(func(ctx context.Context) { c, err = r.svc.BeginPasskeySudo(ctx, laptop.as(alice)) })
	if err != nil {
		t.Fatal(err)
	}
	laptop.do(func(ctx context.Context) {
		err = r.svc.FinishPasskeySudo(ctx, laptop.as(alice), c.State, authenticator{t}.get(c.Options, key))
	})
	if err != nil {
		t.Fatalf("sudo with a passkey: %v", err)
	}
	if ev := r.lastEvent(audit.SudoPassed); ev.Detail != "passkey" {
		t.Errorf("sudo.passed detail %q, want passkey", ev.Detail)
	}
	laptop.addPasskey(alice, "Another")
}

func TestPasskeyNames(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{strings.Repeat("é", account.MaxPasskeyName), true},
		{strings.Repeat("é", account.MaxPasskeyName+1), false},
		{"Work\nlaptop", false},
		{"\xff", false},
		{"   ", true}, // the default name
	} {
		var err error
		laptop.do(func(ctx context.Context) { _, err = r.svc.BeginPasskeyRegistration(ctx, laptop.as(alice), tc.name) })
		var invalid *account.ValidationError
		if tc.ok && err != nil || !tc.ok && (!errors.As(err, &invalid) || invalid.Fields[account.FieldPasskeyName] == "") {
			t.Errorf("name %q: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// hasEvent reports whether the audit trail has an event with the action
// whose detail contains detail.
func hasEvent(r *rig, action audit.Action, detail string) bool {
	for _, ev := range r.auditTrail() {
		if ev.Action == action && strings.Contains(ev.Detail, detail) {
			return true
		}
	}
	return false
}

// An answer captured in flight (synced passkeys often keep no signature
// counter) cannot be sent again with its prompt's state, however many
// times at once: each prompt is answered once, on every replica.
func TestAPasskeyAnswerCannotBeReplayed(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	key, _ := laptop.addPasskey(alice, "Laptop")
	key.counterless = true

	phone := r.newBrowser("192.0.2.2")
	c := phone.beginPasskeySignIn("")
	answer := authenticator{t}.get(c.Options, key)
	const n = 10
	browsers := make([]*browser, n)
	for i := range browsers {
		browsers[i] = r.newBrowser("198.51.100." + strconv.Itoa(i+1))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range browsers {
		wg.Go(func() { _, errs[i] = browsers[i].finishPasskeySignIn("", c.State, answer) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, account.ErrPasskeyExpired):
			t.Errorf("answer %d: %v, want ErrPasskeyExpired", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("one passkey answer sent %d times at once signed in %d times, want once", n, won)
	}
	if _, err := phone.finishPasskeySignIn("", c.State, answer); !errors.Is(err, account.ErrPasskeyExpired) {
		t.Errorf("the answer once more, later: %v, want ErrPasskeyExpired", err)
	}
}
