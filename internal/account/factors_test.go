package account_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

// enrolTOTP enrols an authenticator app for u, signed in on b, and returns
// its secret (base32, as an app keeps it) and the recovery codes shown.
func (b *browser) enrolTOTP(u user.User) (secret string, codes []string) {
	b.t.Helper()
	var err error
	b.do(func(ctx context.Context) {
		var e account.TOTPEnrolment
		if e, err = b.rig.svc.BeginTOTP(ctx, b.as(u)); err != nil {
			return
		}
		secret = strings.ReplaceAll(e.Secret, " ", "")
		codes, err = b.rig.svc.ConfirmTOTP(ctx, b.as(u), b.rig.code(secret))
	})
	if err != nil {
		b.t.Fatalf("%s enrols an authenticator app: %v", u.Username, err)
	}
	return secret, codes
}

// code is what an authenticator app with secret shows at the rig's time.
func (r *rig) code(secret string) string {
	r.t.Helper()
	c, err := totp.GenerateCodeCustom(secret, r.clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		r.t.Fatalf("compute TOTP code: %v", err)
	}
	return c
}

// passwordStep gives u's password on b and returns the half-finished
// sign-in's token.
func (b *browser) passwordStep(u user.User) string {
	b.t.Helper()
	var done account.SignedIn
	var err error
	b.do(func(ctx context.Context) {
		done, err = b.rig.svc.SignIn(ctx, b.visitor(), u.Username, goodPassword, account.SignInOptions{})
	})
	if err != nil || done.SecondFactor == nil {
		b.t.Fatalf("%s's password step: %v, second step %v", u.Username, err, done.SecondFactor)
	}
	return done.SecondFactor.Token
}

// secondStep finishes a sign-in on b with code.
func (b *browser) secondStep(token, code string) (account.SignedIn, error) {
	b.t.Helper()
	var done account.SignedIn
	var err error
	b.do(func(ctx context.Context) { done, err = b.rig.svc.CompleteSignIn(ctx, b.visitor(), token, code) })
	return done, err
}

func TestPasswordThenAuthenticatorCodeSignsIn(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	secret, codes := laptop.enrolTOTP(alice)
	if len(codes) != account.RecoveryCodeCount {
		t.Fatalf("enrolment showed %d recovery codes, want %d", len(codes), account.RecoveryCodeCount)
	}

	phone := r.newBrowser("192.0.2.2")
	token := phone.passwordStep(alice)
	if _, signedIn, _ := phone.whoami(); signedIn {
		t.Fatal("the password alone signed the phone in")
	}
	r.clock.Advance(31 * time.Second) // the next code: the enrolment used this one
	done, err := phone.secondStep(token, r.code(secret))
	if err != nil {
		t.Fatalf("second step: %v", err)
	}
	info, signedIn, _ := phone.whoami()
	if !signedIn || info.Method != account.MethodPasswordTOTP || done.Method != account.MethodPasswordTOTP {
		t.Fatalf("after the code: signed in %v, method %q (result %q)", signedIn, info.Method, done.Method)
	}
	if ev := r.lastEvent(audit.FactorUsed); ev.TargetUserID != alice.ID {
		t.Errorf("factor.used names user %d", ev.TargetUserID)
	}
}

func TestAnAuthenticatorCodeIsAcceptedOnce(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	secret, _ := laptop.enrolTOTP(alice)
	r.clock.Advance(31 * time.Second)

	first := r.newBrowser("192.0.2.2")
	if _, err := first.secondStep(first.passwordStep(alice), r.code(secret)); err != nil {
		t.Fatalf("first use of the code: %v", err)
	}
	// Someone who saw the code over the user's shoulder, within its window.
	eve := r.newBrowser("198.51.100.7")
	if _, err := eve.secondStep(eve.passwordStep(alice), r.code(secret)); !errors.Is(err, account.ErrBadCode) {
		t.Fatalf("the same code again: %v, want ErrBadCode", err)
	}
	if _, signedIn, _ := eve.whoami(); signedIn {
		t.Fatal("a replayed code signed in")
	}
	// A code from before the last one used is refused too.
	r.clock.Advance(30 * time.Second)
	old, err := totp.GenerateCodeCustom(secret, r.clock.Now().Add(-30*time.Second), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eve.secondStep(eve.passwordStep(alice), old); !errors.Is(err, account.ErrBadCode) {
		t.Fatalf("a code older than the last used: %v, want ErrBadCode", err)
	}
}

func TestOneCodeSentManyTimesAtOnceSignsInOnce(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	secret, _ := laptop.enrolTOTP(alice)
	r.clock.Advance(31 * time.Second)

	const n = 20
	browsers := make([]*browser, n)
	tokens := make([]string, n)
	for i := range browsers {
		browsers[i] = r.newBrowser("192.0.2.2")
		tokens[i] = browsers[i].passwordStep(alice)
	}
	code := r.code(secret)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range browsers {
		wg.Go(func() { _, errs[i] = browsers[i].secondStep(tokens[i], code) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, account.ErrBadCode) && !errors.Is(err, account.ErrThrottled):
			t.Errorf("browser %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent uses of one code signed in, want exactly 1", won, n)
	}
	if got := len(r.liveSessions(alice.ID)); got != 2 { // the laptop and the winner
		t.Errorf("alice has %d sessions, want 2", got)
	}
}

func TestARecoveryCodeSignsInOnceAndSaysHowManyAreLeft(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	_, codes := laptop.enrolTOTP(alice)

	const n = 10
	browsers := make([]*browser, n)
	tokens := make([]string, n)
	for i := range n {
		browsers[i] = r.newBrowser("192.0.2.3")
		tokens[i] = browsers[i].passwordStep(alice)
	}
	var wg sync.WaitGroup
	results := make([]account.SignedIn, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = browsers[i].secondStep(tokens[i], strings.ToUpper(codes[3])) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			if results[i].Method != account.MethodPasswordRecovery || results[i].RecoveryCodesLeft != account.RecoveryCodeCount-1 {
				t.Errorf("winner: method %q, %d codes left", results[i].Method, results[i].RecoveryCodesLeft)
			}
		} else if !errors.Is(err, account.ErrBadCode) && !errors.Is(err, account.ErrThrottled) {
			t.Errorf("use %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("one recovery code signed in %d times at once, want once", won)
	}
	if ev := r.lastEvent(audit.FactorUsed); !strings.Contains(ev.Detail, "9 left") {
		t.Errorf("factor.used detail %q does not say 9 left", ev.Detail)
	}
}

func TestWrongCodesAreThrottledLikePasswords(t *testing.T) {
	policy := throttle.Policy{Limit: 3, BaseDelay: time.Minute, MaxDelay: time.Hour, Window: time.Hour}
	r := newRig(t, rigOptions{loginPolicy: policy})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	laptop.enrolTOTP(alice)
	token := r.newBrowser("192.0.2.9").passwordStep(alice)

	// 40 guesses at once, each from its own address: the account's counter
	// alone must hold them to what the policy allows before its first wait
	// (Limit failures, and the one that starts the wait).
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		b := r.newBrowser("203.0.113." + strconv.Itoa(i+1))
		wg.Go(func() { _, errs[i] = b.secondStep(token, "000000") })
	}
	wg.Wait()
	checked, throttled := 0, 0
	for i, err := range errs {
		switch {
		case errors.Is(err, account.ErrBadCode):
			checked++
		case errors.Is(err, account.ErrThrottled):
			throttled++
		default:
			t.Errorf("guess %d: %v", i, err)
		}
	}
	if checked > policy.Limit+1 || checked+throttled != n {
		t.Fatalf("%d guesses checked, %d throttled; want at most %d checked", checked, throttled, policy.Limit+1)
	}
}

func TestTheSecondStepExpiresAndCannotBeForged(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	secret, _ := laptop.enrolTOTP(alice)

	phone := r.newBrowser("192.0.2.2")
	token := phone.passwordStep(alice)
	forged := token[:len(token)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(token, "AA")]
	if _, err := phone.secondStep(forged, r.code(secret)); !errors.Is(err, account.ErrSignInExpired) {
		t.Errorf("a tampered token: %v, want ErrSignInExpired", err)
	}
	r.clock.Advance(account.SecondStepTimeout + time.Second)
	if _, err := phone.secondStep(token, r.code(secret)); !errors.Is(err, account.ErrSignInExpired) {
		t.Errorf("a token past its %s: %v, want ErrSignInExpired", account.SecondStepTimeout, err)
	}
}

func TestARevocationDuringTheSecondStepVoidsTheSignIn(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	secret, _ := laptop.enrolTOTP(alice)

	thief := r.newBrowser("198.51.100.7")
	token := thief.passwordStep(alice)
	// The owner notices and signs out everywhere before the thief has the
	// code.
	r.clock.Advance(time.Second)
	if _, err := r.svc.EndAllSessions(context.Background(), account.CommandLine(), alice.ID); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(31 * time.Second)
	if _, err := thief.secondStep(token, r.code(secret)); !errors.Is(err, account.ErrRevokedInFlight) {
		t.Fatalf("second step after sign out everywhere: %v, want ErrRevokedInFlight", err)
	}
	if _, signedIn, _ := thief.whoami(); signedIn {
		t.Fatal("the thief is signed in")
	}
}

func TestSensitiveActionsNeedAProofOfSignInFromTheLastTenMinutes(t *testing.T) {
	r := newRig(t, rigOptions{})
	root := r.createUser("root", user.RoleAdmin)
	bob := r.createUser("bob", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(root)
	disable := func() (err error) {
		laptop.do(func(ctx context.Context) { _, _, err = r.svc.SetDisabled(ctx, laptop.as(root), bob.ID, true) })
		return err
	}
	enable := func() (err error) {
		laptop.do(func(ctx context.Context) { _, _, err = r.svc.SetDisabled(ctx, laptop.as(root), bob.ID, false) })
		return err
	}
	reauth := func(pw string) (err error) {
		laptop.do(func(ctx context.Context) { err = r.svc.Reauthenticate(ctx, laptop.as(root), pw, "") })
		return err
	}

	r.clock.Advance(9 * time.Minute)
	if err := disable(); err != nil {
		t.Fatalf("9 minutes after signing in: %v", err)
	}
	r.clock.Advance(2 * time.Minute)
	if err := enable(); !errors.Is(err, account.ErrReauthRequired) {
		t.Fatalf("11 minutes after signing in: %v, want ErrReauthRequired", err)
	}
	if r.user(bob.ID).Disabled != true {
		t.Fatal("the refused action changed something")
	}
	if err := reauth("wrong password"); !errors.Is(err, account.ErrBadCredentials) {
		t.Fatalf("wrong password at the prompt: %v", err)
	}
	if err := enable(); !errors.Is(err, account.ErrReauthRequired) {
		t.Fatalf("after a wrong password: %v, want ErrReauthRequired", err)
	}
	if err := reauth(goodPassword); err != nil {
		t.Fatalf("right password at the prompt: %v", err)
	}
	if err := enable(); err != nil {
		t.Fatalf("after the prompt: %v", err)
	}
	if ev := r.lastEvent(audit.SudoFailed); ev.TargetUserID != root.ID {
		t.Errorf("sudo.failed names user %d", ev.TargetUserID)
	}
	r.lastEvent(audit.SudoPassed)
	// The proof lasts ten minutes from the prompt, in this session only.
	r.clock.Advance(10*time.Minute - time.Second)
	if err := disable(); err != nil {
		t.Fatalf("just under ten minutes after the prompt: %v", err)
	}
	other := r.newBrowser("192.0.2.2")
	other.mustSignIn(root)
	r.clock.Advance(2 * time.Second)
	if err := enable(); !errors.Is(err, account.ErrReauthRequired) {
		t.Fatalf("ten minutes after the prompt: %v, want ErrReauthRequired", err)
	}
	// The command line needs no prompt.
	if _, _, err := r.svc.SetDisabled(context.Background(), account.CommandLine(), bob.ID, false); err != nil {
		t.Fatalf("command line: %v", err)
	}
}

func TestSigningOutOtherDevicesAndChangingFactorsNeedAFreshProof(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	laptop.enrolTOTP(alice)
	r.clock.Advance(11 * time.Minute)
	laptop.do(func(ctx context.Context) {
		if _, err := r.svc.EndOtherSessions(ctx, laptop.as(alice)); !errors.Is(err, account.ErrReauthRequired) {
			t.Errorf("sign out other devices: %v, want ErrReauthRequired", err)
		}
		if err := r.svc.RemoveTOTP(ctx, laptop.as(alice)); !errors.Is(err, account.ErrReauthRequired) {
			t.Errorf("remove the authenticator app: %v, want ErrReauthRequired", err)
		}
		if _, err := r.svc.RegenerateRecoveryCodes(ctx, laptop.as(alice)); !errors.Is(err, account.ErrReauthRequired) {
			t.Errorf("new recovery codes: %v, want ErrReauthRequired", err)
		}
		if _, err := r.svc.BeginTOTP(ctx, laptop.as(alice)); !errors.Is(err, account.ErrReauthRequired) {
			t.Errorf("enrol an authenticator app: %v, want ErrReauthRequired", err)
		}
	})
}

func TestAnAdministratorMustEnrolBeforeAnythingElseWhenThePolicySaysSo(t *testing.T) {
	r := newRig(t, rigOptions{requireMFA: account.RequireMFAAdmins})
	root := r.createUser("root", user.RoleAdmin)
	bob := r.createUser("bob", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	var done account.SignedIn
	var err error
	laptop.do(func(ctx context.Context) {
		done, err = r.svc.SignIn(ctx, laptop.visitor(), root.Username, goodPassword, account.SignInOptions{})
	})
	if err != nil || !done.MustEnrol {
		t.Fatalf("admin without a factor: %v, must enrol %v", err, done.MustEnrol)
	}
	laptop.do(func(ctx context.Context) {
		if _, _, err := r.svc.SetDisabled(ctx, laptop.as(root), bob.ID, true); !errors.Is(err, account.ErrMustEnrol) {
			t.Errorf("admin action before enrolling: %v, want ErrMustEnrol", err)
		}
	})
	laptop.enrolTOTP(root)
	if info, _, _ := laptop.whoami(); info.MustEnrol {
		t.Fatal("the session must still enrol after enrolling")
	}
	laptop.do(func(ctx context.Context) {
		if _, _, err := r.svc.SetDisabled(ctx, laptop.as(root), bob.ID, true); err != nil {
			t.Errorf("admin action after enrolling: %v", err)
		}
		if err := r.svc.RemoveTOTP(ctx, laptop.as(root)); !errors.Is(err, account.ErrFactorRequired) {
			t.Errorf("removing the required last factor: %v, want ErrFactorRequired", err)
		}
	})
	// Users are not asked to enrol under "admins".
	carol := r.createUser("carol", user.RoleUser)
	phone := r.newBrowser("192.0.2.5")
	phone.do(func(ctx context.Context) {
		done, err = r.svc.SignIn(ctx, phone.visitor(), carol.Username, goodPassword, account.SignInOptions{})
	})
	if err != nil || done.MustEnrol || done.SecondFactor != nil {
		t.Errorf("a user under the admins policy: %v, must enrol %v", err, done.MustEnrol)
	}
}

func TestAnOperatorResetsAUsersFactors(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("192.0.2.1")
	laptop.mustSignIn(alice)
	laptop.enrolTOTP(alice)
	had, err := r.svc.ResetFactors(context.Background(), account.CommandLine(), alice.ID)
	if err != nil || !had.TOTP || had.RecoveryCodesLeft != account.RecoveryCodeCount {
		t.Fatalf("reset: %+v, %v", had, err)
	}
	if ev := r.lastEvent(audit.FactorsReset); ev.TargetUserID != alice.ID || ev.ActorName != "cli" {
		t.Errorf("factors.reset event %+v", ev)
	}
	// The password alone signs in again.
	if _, err := r.newBrowser("192.0.2.2").signIn("alice", goodPassword); err != nil {
		t.Fatalf("sign in after the reset: %v", err)
	}
	if _, signedIn, _ := laptop.whoami(); !signedIn {
		t.Error("the reset signed the laptop out")
	}
}
