package account_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

// The attacks of this file were each seen to get through before the
// throttle reserved attempts atomically and failed closed.

func TestParallelGuessesGetNoMoreChecksThanSequentialOnes(t *testing.T) {
	// Sequentially, failures 1 to Limit are free and failure Limit+1
	// starts a wait: Limit+1 guesses reach the password check. 200 at once
	// must not get more.
	for round := range 5 {
		r := newRig(t, rigOptions{loginPolicy: strictLogin})
		r.createUser("alice", user.RoleUser)
		checked := 0
		for _, err := range guessInParallel(r, "alice", 200) {
			if errors.Is(err, account.ErrBadCredentials) {
				checked++
			}
		}
		if limit := strictLogin.Limit + 1; checked != limit {
			t.Fatalf("round %d: %d of 200 parallel guesses were checked against alice's password; the policy allows %d", round, checked, limit)
		}
	}
}

func TestParallelSignUpsFromOneAddressStopAtTheLimit(t *testing.T) {
	p := throttle.Policy{Limit: 10, Window: time.Hour, BaseDelay: time.Minute, MaxDelay: time.Hour}
	r := newRig(t, rigOptions{signupPolicy: p})
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for i := range 30 {
		b := r.newBrowser("198.51.100.7")
		wg.Go(func() {
			var err error
			b.do(func(ctx context.Context) {
				_, err = r.svc.SignUp(ctx, b.visitor(), fmt.Sprintf("bot%02d", i), goodPassword, goodPassword)
			})
			if err == nil {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("30 parallel sign-ups from one address made %d accounts", created)
	// The 11th attempt is the one that starts the wait, as for sign-in.
	if created > p.Limit+1 {
		t.Errorf("30 parallel sign-ups from one address made %d accounts; the policy allows %d", created, p.Limit+1)
	}
}

func TestIPv6ClientsAreCountedPerSlash64(t *testing.T) {
	r := newRig(t, rigOptions{loginPolicy: strictLogin})
	r.createUser("alice", user.RoleUser)
	// An attacker with a /64 takes a fresh address for every guess, at a
	// different account each time so the account counter does not stop it.
	var err error
	for i := range strictLogin.Limit + 2 {
		b := r.newBrowser(fmt.Sprintf("2001:db8:1:2::%x", i+1))
		_, err = b.signIn(fmt.Sprintf("user%d", i), "wrong")
	}
	if !errors.Is(err, account.ErrThrottled) {
		t.Fatalf("guess %d from the same /64: %v, want ErrThrottled", strictLogin.Limit+2, err)
	}
	// Another /64 is another client.
	if _, err := r.newBrowser("2001:db8:1:3::1").signIn("alice", goodPassword); err != nil {
		t.Fatalf("alice from another /64: %v", err)
	}
}

func TestPasswordChangeGuessesAreThrottledAndAudited(t *testing.T) {
	r := newRig(t, rigOptions{loginPolicy: strictLogin})
	alice := r.createUser("alice", user.RoleUser)
	stolen := r.newBrowser("198.51.100.66")
	stolen.mustSignIn(alice)
	// The session cookie was stolen and replayed elsewhere, without the
	// device cookie that alice's browser keeps apart.
	stolen.deviceToken = ""

	change := func(current string) error {
		var err error
		stolen.do(func(ctx context.Context) {
			err = r.svc.ChangePassword(ctx, stolen.as(alice), current, "a brand new passphrase", "a brand new passphrase")
		})
		return err
	}
	for i := range strictLogin.Limit + 1 {
		if err := change(fmt.Sprintf("guess %d", i)); !errors.Is(err, account.ErrInvalid) {
			t.Fatalf("guess %d at the current password: %v, want a ValidationError", i, err)
		}
	}
	if err := change(goodPassword); !errors.Is(err, account.ErrThrottled) {
		t.Fatalf("the right current password after %d wrong ones: %v, want ErrThrottled", strictLogin.Limit+1, err)
	}
	// The counter is the account's: sign-in is throttled too.
	if _, err := r.newBrowser("203.0.113.50").signIn("alice", goodPassword); !errors.Is(err, account.ErrThrottled) {
		t.Errorf("sign-in after the guesses at the password change: %v, want ErrThrottled", err)
	}
	failures := 0
	for _, ev := range r.auditTrail() {
		if ev.Action == audit.PasswordChangeFailed && ev.TargetUserID == alice.ID {
			failures++
		}
	}
	if failures != strictLogin.Limit+1 {
		t.Errorf("%d failed password changes audited, want %d", failures, strictLogin.Limit+1)
	}
}

// TestSignInFailsClosedWhenTheCountersCannotCount stops the Redis that
// holds the attempt counters (sessions stay in process) and checks that no
// password is checked: the right and the wrong one get the same
// ErrUnavailable, and no failed sign-in is recorded.
func TestSignInFailsClosedWhenTheCountersCannotCount(t *testing.T) {
	srv := testsvc.StartRedis(t)
	pool, err := redisx.NewPool(srv.URL, redisx.DefaultPoolOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	r := newRig(t, rigOptions{loginPolicy: strictLogin, throttle: func(now func() time.Time) throttle.Store {
		return throttle.NewRedisStore(pool, now)
	}})
	r.createUser("alice", user.RoleUser)
	srv.Stop(t)

	before := len(r.auditTrail())
	for _, pw := range []string{goodPassword, "wrong"} {
		start := time.Now()
		_, err := r.newBrowser("203.0.113.9").signIn("alice", pw)
		var ue *account.UnavailableError
		if !errors.As(err, &ue) || ue.Dependency != account.DepThrottle {
			t.Errorf("sign-in with the counters down: %v, want ErrUnavailable naming the attempt counters", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("sign-in with the counters down took %v, want about 2 s at most", took)
		}
	}
	if after := len(r.auditTrail()); after != before {
		t.Errorf("%d sign-in outcomes were recorded while the counters were down: passwords were checked", after-before)
	}
	for i := range 5 {
		b := r.newBrowser("203.0.113.9")
		var err error
		b.do(func(ctx context.Context) {
			_, err = r.svc.SignUp(ctx, b.visitor(), fmt.Sprintf("newbie%d", i), goodPassword, goodPassword)
		})
		if !errors.Is(err, account.ErrUnavailable) {
			t.Fatalf("sign-up with the counters down: %v, want ErrUnavailable", err)
		}
	}
	srv.Start(t)
	if _, err := r.newBrowser("203.0.113.9").signIn("alice", goodPassword); err != nil {
		t.Fatalf("sign-in once Redis is back: %v", err)
	}
}

func TestAFloodOfThrottledAttemptsWritesAFewAuditRows(t *testing.T) {
	r := newRig(t, rigOptions{loginPolicy: strictLogin})
	r.createUser("alice", user.RoleUser)
	attacker := r.newBrowser("198.51.100.66")
	for range strictLogin.Limit + 1 {
		attacker.signIn("alice", "wrong")
	}
	before := len(r.auditTrail())
	const flood = 150
	for i := range flood {
		if _, err := attacker.signIn("alice", "wrong"); !errors.Is(err, account.ErrThrottled) {
			t.Fatalf("attempt %d during the wait: %v, want ErrThrottled", i, err)
		}
	}
	all := r.auditTrail() // newest first
	rows := all[:len(all)-before]
	// The first refusal, then the 10th and the 100th, with their counts.
	if len(rows) != 3 {
		t.Fatalf("%d refused attempts wrote %d audit rows, want 3: %+v", flood, len(rows), rows)
	}
	details := map[string]bool{}
	for _, ev := range rows {
		details[ev.Detail] = true
	}
	for _, want := range []string{"throttled", "throttled: 10 attempts refused during this wait", "throttled: 100 attempts refused during this wait"} {
		if !details[want] {
			t.Errorf("no audit row %q among %v", want, details)
		}
	}
}

func TestTheRightPasswordOfADisabledAccountLooksLikeAWrongOne(t *testing.T) {
	// A guesser who finds the password of a disabled account learns
	// nothing: the error is answered like a wrong password's, and the
	// counters do not reset, so the next answer does not tell either.
	for _, last := range []string{goodPassword, "still wrong"} {
		r := newRig(t, rigOptions{loginPolicy: strictLogin})
		alice := r.createUser("alice", user.RoleUser)
		if err := r.users.SetDisabled(t.Context(), alice.ID, true); err != nil {
			t.Fatal(err)
		}
		guesser := r.newBrowser("198.51.100.66")
		for range strictLogin.Limit {
			guesser.signIn("alice", "wrong")
		}
		_, err := guesser.signIn("alice", last)
		if !errors.Is(err, account.ErrDisabled) && !errors.Is(err, account.ErrBadCredentials) {
			t.Fatalf("guess %q: %v", last, err)
		}
		if _, err := guesser.signIn("alice", "next guess"); !errors.Is(err, account.ErrThrottled) {
			t.Errorf("after the guess %q: %v, want ErrThrottled either way", last, err)
		}
	}
}

// TestAnAttackerCannotLockTheOwnerOutOfTheirOwnBrowser: an attacker keeps
// alice's shared budget used up, one wrong password each time the wait
// ends, from addresses of their own. Alice's browser, which signed in
// before, keeps its own budget and signs in; a browser she never used is
// throttled like the attacker; and a stolen device token gets its device's
// budget, not unlimited guesses.
func TestAnAttackerCannotLockTheOwnerOutOfTheirOwnBrowser(t *testing.T) {
	r := newRig(t, rigOptions{loginPolicy: strictLogin})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("203.0.113.10")
	if _, err := laptop.signIn("alice", goodPassword); err != nil {
		t.Fatal(err)
	}
	if laptop.deviceToken == "" {
		t.Fatal("signing in gave the browser no device token")
	}
	attacker := r.newBrowser("198.51.100.66")
	for range strictLogin.Limit + 1 {
		attacker.signIn("alice", "wrong")
	}
	if _, err := attacker.signIn("alice", "wrong"); !errors.Is(err, account.ErrThrottled) {
		t.Fatalf("the attacker's next guess: %v, want ErrThrottled", err)
	}
	if _, err := r.newBrowser("203.0.113.11").signIn("alice", goodPassword); !errors.Is(err, account.ErrThrottled) {
		t.Errorf("alice from a browser she never used: %v, want ErrThrottled (the shared budget is used up)", err)
	}
	if _, err := laptop.signIn("alice", goodPassword); err != nil {
		t.Errorf("alice on her own laptop while the attacker keeps the account throttled: %v, want signed in", err)
	}
	if info, signedIn, _ := laptop.whoami(); !signedIn || info.UserID != alice.ID {
		t.Errorf("the laptop is not signed in as alice: %+v %v", info, signedIn)
	}

	// A token for alice is no token for bob, and a forged one counts as none.
	r.createUser("bob", user.RoleUser)
	thief := r.newBrowser("198.51.100.77")
	thief.deviceToken = laptop.deviceToken
	if _, err := thief.signIn("bob", "wrong"); !errors.Is(err, account.ErrBadCredentials) {
		t.Fatalf("guess at bob with alice's token: %v", err)
	}
	checked := 0
	for range 3 * strictLogin.Limit {
		if _, err := thief.signIn("alice", "wrong"); errors.Is(err, account.ErrBadCredentials) {
			checked++
		}
	}
	if checked > strictLogin.Limit+1 {
		t.Errorf("a stolen device token bought %d guesses; the device's budget is %d", checked, strictLogin.Limit+1)
	}
}
