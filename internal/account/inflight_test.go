package account_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

// Issue "Sign-in defences", items 5 and 6: a revocation that lands while a
// sign-in is being checked is never undone by that sign-in finishing.

// checkingTime is how long the clock moves on while a password is being
// checked: a real check takes ~25 ms.
const checkingTime = 20 * time.Millisecond

// revocations are the ways an account's sessions end everywhere: each
// prepares with u signed in where it needs, and returns the revocation to
// run while a sign-in of u is in flight.
func revocations(r *rig) map[string]func(u user.User) func() {
	cli := account.CommandLine()
	return map[string]func(u user.User) func(){
		"the password changes on the owner's phone": func(u user.User) func() {
			phone := r.newBrowser("198.51.100.9")
			phone.mustSignIn(u)
			return func() {
				var err error
				phone.do(func(ctx context.Context) {
					err = r.svc.ChangePassword(ctx, phone.as(u), goodPassword, "a brand new passphrase", "a brand new passphrase")
				})
				if err != nil {
					r.t.Errorf("change password: %v", err)
				}
			}
		},
		"the account is disabled and enabled again": func(u user.User) func() {
			return func() {
				if _, _, err := r.svc.SetDisabled(context.Background(), cli, u.ID, true); err != nil {
					r.t.Errorf("disable: %v", err)
				}
				if _, _, err := r.svc.SetDisabled(context.Background(), cli, u.ID, false); err != nil {
					r.t.Errorf("enable: %v", err)
				}
			}
		},
		"an administrator signs the account out everywhere": func(u user.User) func() {
			return func() {
				if _, err := r.svc.EndAllSessions(context.Background(), cli, u.ID); err != nil {
					r.t.Errorf("end all sessions: %v", err)
				}
			}
		},
	}
}

func TestSignInInFlightDuringARevocationGetsNoSession(t *testing.T) {
	for name := range revocations(newRig(t, rigOptions{})) {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			alice := r.createUser("alice", user.RoleUser)
			revoke := revocations(r)[name](alice)
			// The first password check is the thief's; the revocation's own
			// (a password change checks the current one) must not wait.
			var first atomic.Bool
			var afterRevocation []string
			r.duringVerify(func() {
				if first.CompareAndSwap(false, true) {
					r.clock.Advance(checkingTime)
					revoke()
					afterRevocation = r.liveSessions(alice.ID)
				}
			})

			thief := r.newBrowser("203.0.113.66")
			_, err := thief.signIn("alice", goodPassword)
			if !errors.Is(err, account.ErrRevokedInFlight) {
				t.Fatalf("the sign-in that was being checked: %v, want ErrRevokedInFlight", err)
			}
			if _, signedIn, _ := thief.whoami(); signedIn {
				t.Fatal("the browser is signed in as alice after the revocation")
			}
			ev := r.lastEvent(audit.LoginFailed)
			if ev.TargetUserID != alice.ID || ev.Detail != "sessions ended while signing in" {
				t.Errorf("last failed sign-in in the audit trail: %+v", ev)
			}
			if live := r.liveSessions(alice.ID); !slices.Equal(live, afterRevocation) {
				t.Errorf("alice's sessions are %q, want %q as the revocation left them", live, afterRevocation)
			}

			// A sign-in that starts after the revocation is a new decision.
			r.beforeVerify.Store(nil)
			if name != "the password changes on the owner's phone" {
				thief.mustSignIn(alice)
			} else if _, err := thief.signIn("alice", goodPassword); !errors.Is(err, account.ErrBadCredentials) {
				t.Errorf("the old password after the change: %v, want ErrBadCredentials", err)
			}
		})
	}
}

// TestManySignInsInFlightDuringARevocationAllGetNoSession is the race with
// many actors: twenty sign-ins of one account from twenty addresses are all
// past the password check's start when an administrator signs the account
// out everywhere; none of them may end with a session.
func TestManySignInsInFlightDuringARevocationAllGetNoSession(t *testing.T) {
	const signIns = 20
	// Enough attempts that the throttle lets all twenty through.
	generous := throttle.Policy{Limit: 100, Window: time.Hour, BaseDelay: time.Minute, MaxDelay: time.Hour}
	r := newRig(t, rigOptions{loginPolicy: generous})
	alice := r.createUser("alice", user.RoleUser)
	var inFlight sync.WaitGroup
	inFlight.Add(signIns)
	revoked := make(chan struct{})
	r.duringVerify(func() {
		inFlight.Done()
		<-revoked
	})

	errs := make(chan error, signIns)
	var done sync.WaitGroup
	for i := range signIns {
		done.Go(func() {
			_, err := r.newBrowser(fmt.Sprintf("203.0.113.%d", i+1)).signIn("alice", goodPassword)
			errs <- err
		})
	}
	inFlight.Wait()
	r.clock.Advance(checkingTime)
	if _, err := r.svc.EndAllSessions(context.Background(), account.CommandLine(), alice.ID); err != nil {
		t.Fatalf("end all sessions: %v", err)
	}
	close(revoked)
	done.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, account.ErrRevokedInFlight) {
			t.Errorf("a sign-in in flight: %v, want ErrRevokedInFlight", err)
		}
	}
	if live := r.liveSessions(alice.ID); len(live) != 0 {
		t.Errorf("alice has %d live sessions after being signed out everywhere, want 0", len(live))
	}
}

// TestPasswordChangeWhoseSessionEndsInFlightChangesNothing: a thief with
// the cookie and the password is changing the password when the owner, on
// their phone, signs out every other device. The change already running
// does not complete: the password stays the owner's, and the thief's
// session stays ended.
func TestPasswordChangeWhoseSessionEndsInFlightChangesNothing(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	thief, phone := r.newBrowser("203.0.113.66"), r.newBrowser("198.51.100.2")
	thiefKey := thief.mustSignIn(alice)
	phone.mustSignIn(alice)
	var first atomic.Bool
	r.duringVerify(func() {
		if first.CompareAndSwap(false, true) {
			var err error
			phone.do(func(ctx context.Context) { _, err = r.svc.EndOtherSessions(ctx, phone.as(alice)) })
			if err != nil {
				t.Errorf("phone signs out the other devices: %v", err)
			}
		}
	})

	const thiefsPassword = "the thief's new passphrase"
	var err error
	thief.do(func(ctx context.Context) {
		err = r.svc.ChangePassword(ctx, thief.as(alice), goodPassword, thiefsPassword, thiefsPassword)
	})
	if !errors.Is(err, account.ErrNotSignedIn) {
		t.Fatalf("password change on the session signed out meanwhile: %v, want ErrNotSignedIn", err)
	}
	if _, signedIn, _ := thief.whoami(); signedIn {
		t.Error("the thief's browser is signed in again")
	}
	if reason := r.endReason(thiefKey); reason != session.EndedFromOtherDevice {
		t.Errorf("the thief's session ended with %q, want %q", reason, session.EndedFromOtherDevice)
	}
	r.beforeVerify.Store(nil)
	if _, err := r.newBrowser("198.51.100.3").signIn("alice", thiefsPassword); !errors.Is(err, account.ErrBadCredentials) {
		t.Errorf("sign in with the thief's password: %v, want ErrBadCredentials", err)
	}
	if _, err := r.newBrowser("198.51.100.4").signIn("alice", goodPassword); err != nil {
		t.Errorf("sign in with alice's own password: %v", err)
	}
	for _, ev := range r.auditTrail() {
		if ev.Action == audit.PasswordChanged {
			t.Errorf("the audit trail records a password change: %+v", ev)
		}
	}
}
