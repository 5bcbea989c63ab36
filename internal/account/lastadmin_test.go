package account_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/user"
)

// Issue "Sign-in defences", item 7 --------------------------------------------

func TestCommandLineCannotDisableTheLastAdministrator(t *testing.T) {
	r := newRig(t, rigOptions{})
	root := r.createUser("root", user.RoleAdmin)
	r.createUser("alice", user.RoleUser) // plain users do not count
	rootBrowser := r.newBrowser("203.0.113.1")
	rootKey := rootBrowser.mustSignIn(root)
	cli := account.CommandLine()

	_, ended, err := r.svc.SetDisabled(context.Background(), cli, root.ID, true)
	if !errors.Is(err, account.ErrLastAdmin) {
		t.Fatalf("the command line disables the only administrator: %v, want ErrLastAdmin", err)
	}
	if ended != (account.Ended{}) {
		t.Errorf("ended %+v, want nothing", ended)
	}
	if r.user(root.ID).Disabled {
		t.Error("root's account is disabled")
	}
	if reason := r.endReason(rootKey); reason != "" {
		t.Errorf("root's session ended (%q)", reason)
	}
	for _, ev := range r.auditTrail() {
		if ev.Action == audit.UserDisabled {
			t.Errorf("audit trail records a disable that did not happen: %+v", ev)
		}
	}

	// With a second administrator enabled, root is not the last one.
	backup := r.createUser("backup", user.RoleAdmin)
	if _, _, err := r.svc.SetDisabled(context.Background(), cli, root.ID, true); err != nil {
		t.Fatalf("the command line disables root beside another administrator: %v", err)
	}
	if _, _, err := r.svc.SetDisabled(context.Background(), cli, backup.ID, true); !errors.Is(err, account.ErrLastAdmin) {
		t.Errorf("the command line disables backup, now the last: %v, want ErrLastAdmin", err)
	}
}

// TestAdministratorsDisablingEachOtherAtOnceLeaveOneEnabled is the race of
// the issue: two administrators, each signed in, disable each other at the
// same instant, round after round. Each round one of them wins and the
// other is refused with ErrLastAdmin; the command line enables the loser
// again for the next round. The same holds when the command line is one of
// the two.
func TestAdministratorsDisablingEachOtherAtOnceLeaveOneEnabled(t *testing.T) {
	const rounds = 30
	for _, tc := range []struct {
		name string
		// annFromCommandLine makes "ann" the command line rather than ann's
		// signed-in browser: it disables bob as the command line does.
		annFromCommandLine bool
	}{
		{"two signed-in administrators", false},
		{"an administrator and the command line", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			ann := r.createUser("ann", user.RoleAdmin)
			bob := r.createUser("bob", user.RoleAdmin)
			annBrowser, bobBrowser := r.newBrowser("203.0.113.1"), r.newBrowser("203.0.113.2")
			cli := account.CommandLine()
			wins := map[string]int{}

			for round := range rounds {
				annBrowser.mustSignIn(ann)
				bobBrowser.mustSignIn(bob)
				// disable runs the disable of target from b as actor, or
				// from the command line when b is nil.
				disable := func(b *browser, actor, target user.User) (err error) {
					if b == nil {
						_, _, err = r.svc.SetDisabled(context.Background(), cli, target.ID, true)
						return err
					}
					b.do(func(ctx context.Context) { _, _, err = r.svc.SetDisabled(ctx, b.as(actor), target.ID, true) })
					return err
				}
				var (
					wg               sync.WaitGroup
					start            = make(chan struct{})
					annsErr, bobsErr error
				)
				fromAnn := annBrowser
				if tc.annFromCommandLine {
					fromAnn = nil
				}
				wg.Go(func() { <-start; annsErr = disable(fromAnn, ann, bob) })
				wg.Go(func() { <-start; bobsErr = disable(bobBrowser, bob, ann) })
				close(start)
				wg.Wait()

				// The loser is refused as the last administrator or, when
				// the winner's disable (which signs the loser out) landed
				// before the loser's request loaded its session, as signed
				// out: a signed-out session may do nothing sensitive.
				refused := func(err error) bool {
					return errors.Is(err, account.ErrLastAdmin) || errors.Is(err, account.ErrNotSignedIn)
				}
				var winner, loser user.User
				switch {
				case annsErr == nil && refused(bobsErr):
					winner, loser = ann, bob
				case bobsErr == nil && refused(annsErr):
					winner, loser = bob, ann
				default:
					t.Fatalf("round %d: ann disabling bob: %v; bob disabling ann: %v; want one nil and one ErrLastAdmin",
						round, annsErr, bobsErr)
				}
				wins[winner.Username]++
				if w, l := r.user(winner.ID), r.user(loser.ID); w.Disabled || !l.Disabled {
					t.Fatalf("round %d: %s disabled %t, %s disabled %t; want only %s disabled",
						round, w.Username, w.Disabled, l.Username, l.Disabled, l.Username)
				}
				if got := r.liveSessions(loser.ID); len(got) != 0 {
					t.Errorf("round %d: the disabled %s still has sessions %v", round, loser.Username, got)
				}
				if got := r.liveSessions(winner.ID); len(got) != 1 {
					t.Errorf("round %d: %s, refused as the target, has %d live sessions, want 1 untouched",
						round, winner.Username, len(got))
				}
				if ev := r.lastEvent(audit.UserDisabled); ev.TargetUserID != loser.ID {
					t.Errorf("round %d: last disable recorded is of %q, want %s", round, ev.TargetName, loser.Username)
				}

				if _, _, err := r.svc.SetDisabled(context.Background(), cli, loser.ID, false); err != nil {
					t.Fatalf("round %d: the command line enables %s again: %v", round, loser.Username, err)
				}
			}
			disables := 0
			for _, ev := range r.auditTrail() {
				if ev.Action == audit.UserDisabled {
					disables++
				}
			}
			if disables != rounds {
				t.Errorf("%d disables recorded over %d rounds, want one a round: refusals leave no record", disables, rounds)
			}
			t.Logf("wins over %d rounds: %v", rounds, wins)
		})
	}
}
