package account_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/session/sessiontest"
	"github.com/hallpass/hallpass/internal/user"
)

// Issue 15: an administrator signs everyone out at once, for incident
// response.

func TestAdministratorSignsOutEveryoneAndStaysSignedIn(t *testing.T) {
	r := newRig(t, rigOptions{})
	root := r.createUser("root", user.RoleAdmin)
	carol := r.createUser("carol", user.RoleAdmin)
	alice := r.createUser("alice", user.RoleUser)
	bob := r.createUser("bob", user.RoleUser)
	rootLaptop, rootPhone := r.newBrowser("203.0.113.1"), r.newBrowser("203.0.113.2")
	rootLaptop.mustSignIn(root)
	others := map[*browser]user.User{
		rootPhone:                    root,
		r.newBrowser("198.51.100.1"): alice,
		r.newBrowser("198.51.100.2"): alice,
		r.newBrowser("198.51.100.3"): bob,
		r.newBrowser("192.0.2.10"):   carol,
	}
	keys := map[*browser]string{}
	for b, u := range others {
		keys[b] = b.mustSignIn(u)
	}
	r.clock.Advance(time.Second)
	at := r.clock.Now()

	var (
		ended account.Ended
		err   error
	)
	rootLaptop.do(func(ctx context.Context) { ended, err = r.svc.SignOutEveryone(ctx, rootLaptop.as(root)) })
	if err != nil {
		t.Fatalf("root signs out everyone: %v", err)
	}
	if ended != (account.Ended{Sessions: len(others)}) {
		t.Errorf("ended %+v, want %d sessions at once", ended, len(others))
	}
	for b, u := range others {
		if reason := r.endReason(keys[b]); reason != session.EndedEveryone {
			t.Errorf("a session of %s ended with %q, want %q", u.Username, reason, session.EndedEveryone)
		}
		if _, signedIn, reason := b.whoami(); signedIn || reason != session.EndedEveryone {
			t.Errorf("a browser of %s: signed in %t, told %q; want signed out and told %q", u.Username, signedIn, reason, session.EndedEveryone)
		}
	}
	for _, u := range []user.User{root, carol, alice, bob} {
		if got := r.user(u.ID).SessionsValidAfter; !got.Equal(at) {
			t.Errorf("%s's sessions valid after %v, want the time of the action %v", u.Username, got, at)
		}
	}
	ev := r.lastEvent(audit.SessionsRevokedEveryone)
	if ev.ActorID != root.ID || ev.ActorName != "root" || ev.TargetUserID != 0 || ev.Detail != "5 session(s) of every user signed out" {
		t.Errorf("audit record %+v, want root's, with no target and the count", ev)
	}

	// The laptop goes on, past the check of the durable record that voided
	// every session from before the action, its own included.
	if info, signedIn, _ := rootLaptop.whoami(); !signedIn || info.UserID != root.ID {
		t.Fatalf("root's laptop: signed in %t as %d, want root", signedIn, info.UserID)
	}
	r.clock.Advance(pastNextCheck)
	if _, signedIn, reason := rootLaptop.whoami(); !signedIn {
		t.Fatalf("root's laptop was signed out (%q) at its next check", reason)
	}
	if live := r.liveSessions(root.ID); len(live) != 1 {
		t.Errorf("root has %d live sessions, want the laptop's alone", len(live))
	}

	// Everyone may sign in again at once, and stays signed in.
	again := r.newBrowser("198.51.100.1")
	again.mustSignIn(alice)
	r.clock.Advance(pastNextCheck)
	if _, signedIn, reason := again.whoami(); !signedIn {
		t.Errorf("alice, signed in again after the action, was signed out (%q)", reason)
	}
}

func TestPlainUserCannotSignOutEveryone(t *testing.T) {
	r := newRig(t, rigOptions{})
	mallory := r.createUser("mallory", user.RoleUser)
	bob := r.createUser("bob", user.RoleUser)
	malloryBrowser := r.newBrowser("198.51.100.7")
	malloryBrowser.mustSignIn(mallory)
	r.newBrowser("203.0.113.10").mustSignIn(bob)
	r.clock.Advance(time.Second)
	before := r.snapshot(bob.ID)

	var err error
	malloryBrowser.do(func(ctx context.Context) { _, err = r.svc.SignOutEveryone(ctx, malloryBrowser.as(mallory)) })
	if !errors.Is(err, account.ErrForbidden) {
		t.Fatalf("mallory signs out everyone: %v, want ErrForbidden", err)
	}
	after := r.snapshot(bob.ID)
	if !slices.Equal(after.targetSessions, before.targetSessions) || after.auditEvents != before.auditEvents ||
		after.target != before.target || after.users != before.users {
		t.Errorf("a refused sign-out of everyone changed something: before %+v, after %+v", before, after)
	}
	if _, signedIn, _ := malloryBrowser.whoami(); !signedIn {
		t.Error("mallory's own session ended")
	}
}

func TestSignInInFlightDuringSignOutEveryoneGetsNoSession(t *testing.T) {
	r := newRig(t, rigOptions{})
	root := r.createUser("root", user.RoleAdmin)
	alice := r.createUser("alice", user.RoleUser)
	rootLaptop := r.newBrowser("203.0.113.1")
	rootLaptop.mustSignIn(root)
	var first atomic.Bool
	r.duringVerify(func() {
		if !first.CompareAndSwap(false, true) {
			return
		}
		r.clock.Advance(checkingTime)
		var err error
		rootLaptop.do(func(ctx context.Context) { _, err = r.svc.SignOutEveryone(ctx, rootLaptop.as(root)) })
		if err != nil {
			t.Errorf("root signs out everyone: %v", err)
		}
	})

	thief := r.newBrowser("203.0.113.66")
	if _, err := thief.signIn("alice", goodPassword); !errors.Is(err, account.ErrRevokedInFlight) {
		t.Fatalf("the sign-in that was being checked: %v, want ErrRevokedInFlight", err)
	}
	if _, signedIn, _ := thief.whoami(); signedIn {
		t.Error("the browser is signed in as alice after everyone was signed out")
	}
	if live := r.liveSessions(alice.ID); len(live) != 0 {
		t.Errorf("alice has %d live sessions, want none", len(live))
	}
	if _, signedIn, _ := rootLaptop.whoami(); !signedIn {
		t.Error("root's laptop was signed out")
	}
}

// TestSignOutEveryonePagesThroughMoreUsersThanOneBatch has more users than
// two pages of the session store's batch (500), so the last page is
// partial, and signs them out from the command line, which keeps no
// session.
func TestSignOutEveryonePagesThroughMoreUsersThanOneBatch(t *testing.T) {
	const users = 1001
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	hash, err := r.hasher.Hash(ctx, goodPassword)
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	root := r.createUser("root", user.RoleAdmin)
	rootBrowser := r.newBrowser("203.0.113.1")
	rootBrowser.mustSignIn(root)
	// Straight into the store: a session each is what matters here, not
	// how it was made.
	keys := make([]string, 0, users)
	var last user.User
	for i := range users {
		last, err = r.users.Create(ctx, user.NewUser{Username: fmt.Sprintf("user%04d", i), PasswordHash: hash, Role: user.RoleUser})
		if err != nil {
			t.Fatalf("create user %d: %v", i, err)
		}
		key := sessiontest.NewKeyFor(t, last.ID)
		if _, err := r.store.Create(ctx, key, last.ID, []byte("v"), r.clock.Now().Add(time.Hour), session.Limit{}, session.Origin{}); err != nil {
			t.Fatalf("create session: %v", err)
		}
		keys = append(keys, key)
	}
	lastBrowser := r.newBrowser("198.51.100.1")
	lastBrowser.mustSignIn(last)
	r.clock.Advance(time.Second)

	ended, err := r.svc.SignOutEveryone(ctx, account.CommandLine())
	if err != nil {
		t.Fatalf("the command line signs out everyone: %v", err)
	}
	if want := users + 2; ended != (account.Ended{Sessions: want}) {
		t.Errorf("ended %+v, want %d sessions at once", ended, want)
	}
	for i, k := range keys {
		if reason := r.endReason(k); reason != session.EndedEveryone {
			t.Fatalf("the session of user %d of %d ended with %q, want %q", i+1, users, reason, session.EndedEveryone)
		}
	}
	for who, b := range map[string]*browser{"the last user's": lastBrowser, "root's": rootBrowser} {
		if _, signedIn, reason := b.whoami(); signedIn || reason != session.EndedEveryone {
			t.Errorf("%s browser: signed in %t, told %q; want signed out and told %q", who, signedIn, reason, session.EndedEveryone)
		}
	}
	if ev := r.lastEvent(audit.SessionsRevokedEveryone); ev.ActorName != "cli" || ev.ActorID != 0 {
		t.Errorf("audit record %+v, want the command line's", ev)
	}
}

func TestCommandLineBesideTheEmbeddedStoreSignsOutEveryoneAtTheirNextRefresh(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("198.51.100.1")
	laptop.mustSignIn(alice)
	r.clock.Advance(time.Second)

	ended, err := r.commandLineWithoutRedis().SignOutEveryone(context.Background(), account.CommandLine())
	if err != nil {
		t.Fatalf("the command line signs out everyone: %v", err)
	}
	if ended != (account.Ended{Deferred: true}) {
		t.Errorf("ended %+v, want deferred to the durable record", ended)
	}
	if ev := r.lastEvent(audit.SessionsRevokedEveryone); ev.Detail != "every user's sessions revoked in the database; they end at their next refresh" {
		t.Errorf("audit record %+v", ev)
	}
	r.clock.Advance(pastNextCheck)
	if _, signedIn, reason := laptop.whoami(); signedIn || reason != session.EndedRevoked {
		t.Errorf("alice's laptop at its next refresh: signed in %t, told %q; want signed out and told %q", signedIn, reason, session.EndedRevoked)
	}
}

func TestSignOutEveryoneWithTheDatabaseDownChangesNothing(t *testing.T) {
	r := newRig(t, rigOptions{})
	alice := r.createUser("alice", user.RoleUser)
	laptop := r.newBrowser("198.51.100.1")
	key := laptop.mustSignIn(alice)
	if err := r.db.Close(); err != nil {
		t.Fatalf("close database: %v", err)
	}
	_, err := r.svc.SignOutEveryone(context.Background(), account.CommandLine())
	var unavailable *account.UnavailableError
	if !errors.As(err, &unavailable) || unavailable.Dependency != account.DepDatabase {
		t.Fatalf("got %v, want ErrUnavailable of the database", err)
	}
	if reason := r.endReason(key); reason != "" {
		t.Errorf("alice's session ended (%q) though the durable record could not be written", reason)
	}
}

// TestTwoAdministratorsSigningOutEveryoneAtOnceLeaveNoOldSession is the
// race of two administrators pressing the button at the same moment, round
// after round: each sweep may end the other's own session, but whatever
// happens, no session from before the presses survives, and neither
// answer is anything but success or "signed out".
func TestTwoAdministratorsSigningOutEveryoneAtOnceLeaveNoOldSession(t *testing.T) {
	const rounds = 10
	r := newRig(t, rigOptions{})
	ann, ben := r.createUser("ann", user.RoleAdmin), r.createUser("ben", user.RoleAdmin)
	alice := r.createUser("alice", user.RoleUser)
	for round := range rounds {
		annB, benB := r.newBrowser("203.0.113.1"), r.newBrowser("203.0.113.2")
		annB.mustSignIn(ann)
		benB.mustSignIn(ben)
		old := map[string]string{}
		for i := range 3 {
			b := r.newBrowser(fmt.Sprintf("198.51.100.%d", i+1))
			old[b.mustSignIn(alice)] = "alice"
		}
		old[annB.storeKey()], old[benB.storeKey()] = "ann", "ben"
		r.clock.Advance(time.Second)

		errs := make(chan error, 2)
		start := make(chan struct{})
		for b, u := range map[*browser]user.User{annB: ann, benB: ben} {
			go b.do(func(ctx context.Context) {
				<-start
				_, err := r.svc.SignOutEveryone(ctx, b.as(u))
				errs <- err
			})
		}
		close(start)
		for range 2 {
			if err := <-errs; err != nil && !errors.Is(err, account.ErrNotSignedIn) {
				t.Fatalf("round %d: sign out everyone: %v, want success or ErrNotSignedIn", round, err)
			}
		}
		for key, who := range old {
			if _, found, err := r.store.FindCtx(context.Background(), key); err != nil || found {
				t.Fatalf("round %d: a session of %s from before both presses is still live (err %v)", round, who, err)
			}
		}
		r.clock.Advance(time.Second)
	}
}
