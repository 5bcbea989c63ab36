package account_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/user"
)

// The messages a weak new password gets, wherever it is set.
const (
	guessableMessage        = "This password is too easy to guess: it is a common password or close to one. Use a longer passphrase of unrelated words."
	containsUsernameMessage = "The password must not contain your user name."
)

// weakPasswords are refused as the new password of carol, or of a new user
// caroline, by every use case that sets one.
var weakPasswords = []struct{ plain, message string }{
	{"password1", guessableMessage},
	{"P@ssw0rd123", guessableMessage},
	{"Summer2024!", guessableMessage},
	{"correct horse CAROLINE", containsUsernameMessage},
}

// passwordMessage returns the message err gives the password field, failing
// the test unless err is a ValidationError about that field alone.
func passwordMessage(t *testing.T, err error) string {
	t.Helper()
	var invalid *account.ValidationError
	if !errors.As(err, &invalid) || !errors.Is(err, account.ErrInvalid) {
		t.Fatalf("got %v, want a ValidationError", err)
	}
	if len(invalid.Fields) != 1 || invalid.Fields[account.FieldPassword] == "" {
		t.Fatalf("fields %v, want the password alone", invalid.Fields)
	}
	return invalid.Fields[account.FieldPassword]
}

func TestEveryUseCaseRefusesAWeakPasswordBeforeHashingIt(t *testing.T) {
	r := newRig(t, rigOptions{})
	admin := r.createUser("alice", user.RoleAdmin)
	carol := r.createUser("carol", user.RoleUser)
	adminBrowser := r.newBrowser("203.0.113.1")
	adminBrowser.mustSignIn(admin)
	laptop, phone := r.newBrowser("198.51.100.1"), r.newBrowser("198.51.100.2")
	laptop.mustSignIn(carol)
	phone.mustSignIn(carol)
	svc := r.svc
	visitors := 0

	cases := []struct {
		name string
		// set tries plain as carol's new password, or caroline's.
		set func(t *testing.T, plain string) error
	}{
		{"SignUp", func(t *testing.T, plain string) error {
			// Each attempt from its own address, clear of the sign-up policy.
			visitors++
			b := r.newBrowser("192.0.2." + strconv.Itoa(visitors))
			var err error
			b.do(func(ctx context.Context) { _, err = svc.SignUp(ctx, b.visitor(), "caroline", plain, plain) })
			if _, signedIn, _ := b.whoami(); signedIn {
				t.Error("the visitor is signed in")
			}
			return err
		}},
		{"ChangePassword", func(t *testing.T, plain string) error {
			var err error
			laptop.do(func(ctx context.Context) { err = svc.ChangePassword(ctx, laptop.as(carol), goodPassword, plain, plain) })
			return err
		}},
		{"CreateUser by an administrator", func(t *testing.T, plain string) error {
			var err error
			adminBrowser.do(func(ctx context.Context) {
				_, err = svc.CreateUser(ctx, adminBrowser.as(admin), "caroline", plain, user.RoleUser)
			})
			return err
		}},
		{"CreateUser from the command line", func(t *testing.T, plain string) error {
			_, err := svc.CreateUser(context.Background(), account.CommandLine(), "caroline", plain, user.RoleUser)
			return err
		}},
		{"SetPassword by an administrator", func(t *testing.T, plain string) error {
			var err error
			adminBrowser.do(func(ctx context.Context) { _, err = svc.SetPassword(ctx, adminBrowser.as(admin), carol.ID, plain) })
			return err
		}},
		{"SetPassword from the command line", func(t *testing.T, plain string) error {
			_, err := svc.SetPassword(context.Background(), account.CommandLine(), carol.ID, plain)
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, weak := range weakPasswords {
				before, hashes := r.snapshot(carol.ID), r.hashes.Load()
				if got := passwordMessage(t, tc.set(t, weak.plain)); got != weak.message {
					t.Errorf("%q: message %q, want %q", weak.plain, got, weak.message)
				}
				after := r.snapshot(carol.ID)
				if n := r.hashes.Load() - hashes; n != 0 {
					t.Errorf("%q: hashed %d passwords", weak.plain, n)
				}
				if !slices.Equal(after.targetSessions, before.targetSessions) {
					t.Errorf("%q: carol's sessions went from %v to %v", weak.plain, before.targetSessions, after.targetSessions)
				}
				if after.auditEvents != before.auditEvents {
					t.Errorf("%q: the audit trail went from %d to %d events", weak.plain, before.auditEvents, after.auditEvents)
				}
				if after.users != before.users {
					t.Errorf("%q: the user count went from %d to %d", weak.plain, before.users, after.users)
				}
				if a, b := after.target, before.target; a.PasswordHash != b.PasswordHash ||
					!a.SessionsValidAfter.Equal(b.SessionsValidAfter) || !a.UpdatedAt.Equal(b.UpdatedAt) {
					t.Errorf("%q: carol's account changed: %+v, was %+v", weak.plain, a, b)
				}
			}
		})
	}
	if _, err := r.newBrowser("192.0.2.200").signIn("carol", goodPassword); err != nil {
		t.Errorf("carol signs in with her old password: %v", err)
	}
}

func TestAStrongPasswordIsAcceptedWhereAWeakOneWasRefused(t *testing.T) {
	// The other side of the rule: a passphrase of unrelated words, free of
	// the username, goes through each use case, so the refusals above are
	// about the password and nothing else.
	r := newRig(t, rigOptions{})
	carol := r.createUser("carol", user.RoleUser)
	laptop := r.newBrowser("198.51.100.1")
	laptop.mustSignIn(carol)
	var err error
	laptop.do(func(ctx context.Context) {
		err = r.svc.ChangePassword(ctx, laptop.as(carol), goodPassword, "plum kettle orbit", "plum kettle orbit")
	})
	if err != nil {
		t.Errorf("ChangePassword: %v", err)
	}
	if _, err := r.svc.SetPassword(context.Background(), account.CommandLine(), carol.ID, "lantern quietly sideways"); err != nil {
		t.Errorf("SetPassword: %v", err)
	}
	if _, err := r.svc.CreateUser(context.Background(), account.CommandLine(), "dave", "harbor violet engine", user.RoleUser); err != nil {
		t.Errorf("CreateUser: %v", err)
	}
	b := r.newBrowser("192.0.2.1")
	b.do(func(ctx context.Context) {
		_, err = r.svc.SignUp(ctx, b.visitor(), "erin", "copper meadow tunnel", "copper meadow tunnel")
	})
	if err != nil {
		t.Errorf("SignUp: %v", err)
	}
}
