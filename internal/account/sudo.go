package account

import (
	"context"
	"errors"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/password"
)

// DefaultSudoWindow is how long a proof of sign-in lets a session do
// sensitive things (sudo mode), as GitHub does.
const DefaultSudoWindow = 10 * time.Minute

// requireProof is the sudo-mode rule: a sensitive action (changing a
// factor, signing out other devices, every administrator action) needs a
// proof of sign-in — the sign-in itself, or Reauthenticate — from within
// the sudo window, recorded in the session (so it dies with it). The
// command line is an operator with shell access, and needs none.
//
// A session that must enrol a second factor may do nothing sensitive but
// that (ErrMustEnrol).
func (s *Service) requireProof(ctx context.Context, a Actor) error {
	return s.requireProofTo(ctx, a, false)
}

// requireProofTo is requireProof; enrolling says the action changes the
// session user's own factors, which a must-enrol session may do.
func (s *Service) requireProofTo(ctx context.Context, a Actor, enrolling bool) error {
	if a.commandLine {
		return nil
	}
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return ErrNotSignedIn
	}
	if info.MustEnrol && !enrolling {
		return ErrMustEnrol
	}
	if s.now().Sub(info.ReauthenticatedAt) >= s.sudoWindow {
		return ErrReauthRequired
	}
	return nil
}

// ProofUntil reports until when the request's session may do sensitive
// things without proving its sign-in again; false if it may not now.
func (s *Service) ProofUntil(ctx context.Context) (time.Time, bool) {
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return time.Time{}, false
	}
	until := info.ReauthenticatedAt.Add(s.sudoWindow)
	return until, s.now().Before(until)
}

// SudoWindow is how long a proof of sign-in lasts.
func (s *Service) SudoWindow() time.Duration { return s.sudoWindow }

// Reauthenticate proves the signed-in user's sign-in again for sudo mode,
// with their password or an authenticator code (one of them; passkeys go
// through the passkey ceremony). Attempts share the counters of sign-in:
// a stolen session cookie buys no extra guesses. A wrong password is
// ErrBadCredentials, a wrong code ErrBadCode; both are audited.
func (s *Service) Reauthenticate(ctx context.Context, a Actor, plain, code string) error {
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return ErrNotSignedIn
	}
	u, err := s.user(ctx, info.UserID)
	if err != nil {
		return err
	}
	proof := "password"
	if code != "" {
		if err := s.factorsOn(); err != nil {
			return err
		}
		// Recovery codes are kept for losing the authenticator; they do not
		// unlock sudo mode.
		if _, _, err := s.checkCodeThrottled(ctx, a, u, code, false, "sudo"); err != nil {
			if errors.Is(err, ErrBadCode) {
				s.record(ctx, a, audit.Event{Action: audit.SudoFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "wrong authenticator code"})
			}
			return err
		}
		proof = "authenticator code"
	} else {
		release, err := s.takeShare(ctx, a)
		if err != nil {
			return err
		}
		defer release()
		account, client := s.attemptKeys(a, u.Username)
		if err := s.reserve(ctx, s.loginPolicy, account, client); err != nil {
			if errors.Is(err, ErrThrottled) {
				s.metrics.Throttled("sudo")
			}
			return err
		}
		hctx, cancel := s.hashContext(ctx)
		defer cancel()
		ok, _, err := s.hasher.Verify(hctx, plain, u.PasswordHash)
		if err != nil && !errors.Is(err, password.ErrTooLong) {
			s.giveBack(ctx, s.loginPolicy, account, client)
			return unavailable(DepHashing, err)
		}
		if !ok {
			s.record(ctx, a, audit.Event{Action: audit.SudoFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "wrong password"})
			return ErrBadCredentials
		}
		s.clearAccount(ctx, account, client)
	}
	return s.proven(ctx, a, u.ID, u.Username, proof)
}

// proven records a passed sudo prompt in the session.
func (s *Service) proven(ctx context.Context, a Actor, userID int64, username, proof string) error {
	if err := s.sessions.MarkReauthenticated(ctx); err != nil {
		return unavailable(DepSessions, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.SudoPassed, TargetUserID: userID, TargetName: username, Detail: proof})
	return nil
}
