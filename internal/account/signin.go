package account

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// SignInOptions are the choices a sign-in form makes besides the
// credentials.
type SignInOptions struct {
	// EndSession, when not "", is the public ID of one of the user's
	// sessions to end first, so a user at the limit can sign in in its
	// place; it is honoured only once the password is right.
	EndSession string
	// Remember asks for a "keep me signed in" session, with its longer
	// idle timeout and lifetime; a role not allowed to stay signed in gets
	// a plain session.
	Remember bool
}

// SignedIn is what a successful sign-in gives the browser besides its
// session.
type SignedIn struct {
	User user.User
	// DeviceToken, when device tokens are on, is a fresh token for the
	// browser to keep (see Options.DeviceTrust).
	DeviceToken string
	// SecondFactor, when set, means the password was right but the
	// account has a second factor: no session was started, and the
	// browser must finish the sign-in with CompleteSignIn (or a passkey)
	// within SecondStepTimeout.
	SecondFactor *SecondStep
	// MustEnrol: the account must have a second factor (HALLPASS_REQUIRE_MFA)
	// and has none; the session may only enrol one.
	MustEnrol bool
	// Method says how the user signed in (Method* constants).
	Method string
	// RecoveryCodesLeft, after a sign-in with a recovery code
	// (MethodPasswordRecovery), is how many unused codes remain.
	RecoveryCodesLeft int
}

// SignIn checks a username and password and starts a session for the
// request of ctx, on a fresh token. In order: the attempt counters of the
// account and of the client address (ErrThrottled); the password, with the
// same work for an unknown user as for a known one, so neither the answer
// nor its timing tells which usernames exist (ErrBadCredentials, counted as
// a failure); the account's state (ErrDisabled); then the session, under
// the concurrent-session limit (SessionLimitError under the reject policy).
func (s *Service) SignIn(ctx context.Context, a Actor, username, plain string, opts SignInOptions) (SignedIn, error) {
	// The moment the user starts proving who they are: a whole-user
	// revocation (disable, password change, sign out everywhere) after it
	// voids this sign-in even if the password checks out later.
	began := s.now()
	username = strings.TrimSpace(username)
	if !utf8.ValidString(username) || len(username) > user.MaxUsernameLength {
		username = "" // no such user; the work below is the same
	}
	release, err := s.takeShare(ctx, a)
	if err != nil {
		return SignedIn{}, err
	}
	defer release()
	account, client := s.attemptKeys(a, username)
	var throttled *ThrottledError
	switch err := s.reserve(ctx, s.loginPolicy, account, client); {
	case errors.As(err, &throttled):
		if worthRecording(throttled.Refused) {
			detail := "throttled"
			if throttled.Refused > 1 {
				detail = "throttled: " + strconv.Itoa(throttled.Refused) + " attempts refused during this wait"
			}
			s.record(ctx, a, audit.Event{Action: audit.LoginFailed, TargetName: username, Detail: detail})
		}
		s.metrics.Throttled("login")
		s.metrics.Login("throttled")
		return SignedIn{}, err
	case err != nil:
		s.metrics.Login("unavailable")
		return SignedIn{}, err
	}
	// From here every way out either leaves the attempt counted (a wrong
	// password) or gives it back (a right one, or one never checked).
	notChecked := func(err error) (SignedIn, error) {
		s.giveBack(ctx, s.loginPolicy, account, client)
		return SignedIn{}, err
	}

	u, err := s.users.ByUsername(ctx, username)
	switch {
	case errors.Is(err, user.ErrNotFound) || username == "":
		hctx, cancel := s.hashContext(ctx)
		defer cancel()
		if err := s.hasher.VerifyDummy(hctx, plain); errors.Is(err, password.ErrBusy) {
			return notChecked(unavailable(DepHashing, err))
		}
		s.record(ctx, a, audit.Event{Action: audit.LoginFailed, TargetName: username, Detail: "unknown user"})
		s.metrics.Login("failed")
		return SignedIn{}, ErrBadCredentials
	case err != nil:
		return notChecked(unavailable(DepDatabase, err))
	}
	hctx, cancel := s.hashContext(ctx)
	defer cancel()
	ok, rehash, err := s.hasher.Verify(hctx, plain, u.PasswordHash)
	switch {
	case errors.Is(err, password.ErrTooLong):
		ok = false
	case err != nil:
		return notChecked(unavailable(DepHashing, err))
	}
	if !ok {
		s.record(ctx, a, audit.Event{Action: audit.LoginFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "wrong password"})
		s.metrics.Login("failed")
		return SignedIn{}, ErrBadCredentials
	}
	if u.Disabled {
		// The attempt stays counted, as a wrong password's does: were the
		// counters cleared, the next attempt's answer would tell a guesser
		// that this password was right.
		s.record(ctx, a, audit.Event{Action: audit.LoginFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "account disabled"})
		s.metrics.Login("disabled")
		return SignedIn{}, ErrDisabled
	}
	s.clearAccount(ctx, account, client)
	if rehash {
		s.upgradeHash(ctx, u, plain)
	}
	self := Actor{UserID: u.ID, Username: u.Username, Role: u.Role, IP: a.IP, Device: a.Device}
	n := newSession{remember: opts.Remember, method: MethodPassword}
	if s.factors != nil {
		sum, err := s.factors.Summary(ctx, u.ID)
		if err != nil {
			return SignedIn{}, unavailable(DepDatabase, err)
		}
		if sum.Any() {
			// The password was right; the session waits for the second
			// factor. Nothing is stored: the browser keeps the sealed
			// half-finished sign-in for SecondStepTimeout.
			step := s.secondStep(u, began, opts, sum)
			s.log.LogAttrs(ctx, slog.LevelInfo, "password accepted, second factor awaited", slog.Int64("user_id", u.ID))
			return SignedIn{User: u, SecondFactor: &step}, nil
		}
		n.mustEnrol = s.requireMFA.Requires(u.Role)
	}
	return s.finishSignIn(ctx, a, self, u, began, opts.EndSession, n)
}

// finishSignIn ends the session the user chose to make room (under the
// reject limit policy), starts the new session and tells the account's
// other tabs; it is the last step of every kind of sign-in.
func (s *Service) finishSignIn(ctx context.Context, a, self Actor, u user.User, began time.Time, endSession string, n newSession) (SignedIn, error) {
	if endSession != "" {
		ended, err := s.sessions.Revoke(ctx, u.ID, endSession, session.EndedFromOtherDevice)
		if err != nil {
			return SignedIn{}, unavailable(DepSessions, err)
		}
		if ended {
			s.record(ctx, self, audit.Event{Action: audit.SessionRevoked, TargetUserID: u.ID, TargetName: u.Username,
				Detail: "session " + endSession + " to sign in under the session limit"})
		}
	}
	if err := s.startSessionAs(ctx, self, u, began, n); err != nil {
		return SignedIn{}, err
	}
	if id, ok := s.sessions.CurrentPublicID(ctx); ok && s.signedIn != nil {
		s.signedIn(ctx, SignInNotice{UserID: u.ID, PublicID: id, Device: a.Device, IP: a.IP, At: s.now()})
	}
	done := SignedIn{User: u, MustEnrol: n.mustEnrol, Method: n.method}
	if s.devices != nil {
		done.DeviceToken = s.devices.Issue(u.Username)
	}
	return done, nil
}

// startSession signs u in on the request of ctx with a fresh token, for an
// authentication that happened at authenticatedAt. Under the reject policy a
// user at the limit gets a SessionLimitError with their sessions. If a
// whole-user revocation landed after authenticatedAt, or the session the
// request carried ended while it was in flight, nothing is stored and the
// answer is ErrRevokedInFlight: the sign-in must not undo the revocation.
//
// The new session keeps the "keep me signed in" choice and the sign-in
// method of the request's current one: a token re-issued after a password
// change stays as long-lived, and says how it was first signed in.
func (s *Service) startSession(ctx context.Context, a Actor, u user.User, authenticatedAt time.Time) error {
	current, _ := s.sessions.Current(ctx)
	return s.startSessionAs(ctx, a, u, authenticatedAt, newSession{
		remember: current.Remember, method: current.Method, mustEnrol: current.MustEnrol})
}

// newSession are the choices a new session is started with.
type newSession struct {
	// remember: "keep me signed in" was asked for.
	remember bool
	// method says how the user proved who they are (Method* constants).
	method string
	// mustEnrol: the session may only enrol a second factor.
	mustEnrol bool
}

// startSessionAs is startSession with the session's choices made
// explicitly, as a sign-in makes them.
func (s *Service) startSessionAs(ctx context.Context, a Actor, u user.User, authenticatedAt time.Time, n newSession) error {
	id := session.Identity{UserID: u.ID, Username: u.Username, Role: string(u.Role), AuthenticatedAt: authenticatedAt,
		Remember: n.remember, Method: n.method, MustEnrol: n.mustEnrol}
	evicted, err := s.sessions.Login(ctx, id, a.client())
	switch {
	case errors.Is(err, session.ErrRevoked):
		s.record(ctx, a, audit.Event{Action: audit.LoginFailed, TargetUserID: u.ID, TargetName: u.Username,
			Detail: "sessions ended while signing in"})
		s.metrics.Login("revoked")
		return ErrRevokedInFlight
	case errors.Is(err, session.ErrTooManySessions):
		s.record(ctx, a, audit.Event{Action: audit.LoginFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "session limit reached"})
		s.metrics.Login("limited")
		recs, err := s.sessions.ListUser(ctx, u.ID)
		if err != nil {
			return unavailable(DepSessions, err)
		}
		return &SessionLimitError{User: u, Sessions: recs}
	case err != nil:
		return unavailable(DepSessions, err)
	}
	detail := a.Device
	if n.method != "" && n.method != MethodPassword {
		detail += " (" + MethodLabel(n.method) + ")"
	}
	s.record(ctx, a, audit.Event{Action: audit.LoginSucceeded, TargetUserID: u.ID, TargetName: u.Username, Detail: detail})
	s.metrics.Login("succeeded")
	if evicted > 0 {
		s.record(ctx, a, audit.Event{Action: audit.SessionEvicted, TargetUserID: u.ID, TargetName: u.Username,
			Detail: strconv.Itoa(evicted) + " oldest session(s) signed out: too many devices"})
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "login succeeded", slog.Int64("user_id", u.ID), slog.Int("evicted", evicted))
	return nil
}

// upgradeHash re-hashes a password whose stored parameters are weaker than
// the current ones. A failure is logged and does not stop the sign-in.
func (s *Service) upgradeHash(ctx context.Context, u user.User, plain string) {
	hctx, cancel := s.hashContext(ctx)
	defer cancel()
	hash, err := s.hasher.Hash(hctx, plain)
	if err == nil {
		err = s.users.SetPasswordHash(ctx, u.ID, hash)
	}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "password rehash failed", slog.Int64("user_id", u.ID), slog.Any("error", err))
	}
}

// SignOut ends the session of the request of ctx, if it has one.
func (s *Service) SignOut(ctx context.Context, a Actor) error {
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return nil
	}
	if err := s.sessions.Logout(ctx); err != nil {
		return unavailable(DepSessions, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.Logout, TargetUserID: info.UserID, TargetName: info.Username})
	return nil
}

// SignUp creates an account for a visitor and signs them in. Sign-up
// attempts are counted per client address, successful or not, and slowed
// down past the sign-up policy (ErrThrottled). Bad input is a
// ValidationError.
func (s *Service) SignUp(ctx context.Context, a Actor, username, plain, confirm string) (user.User, error) {
	began := s.now()
	release, err := s.takeShare(ctx, a)
	if err != nil {
		return user.User{}, err
	}
	defer release()
	// Every attempt counts against the address, refused or not, taken
	// atomically before any work, so nobody can probe for taken usernames,
	// or fill the hashing slots, without being slowed down.
	switch err := s.reserve(ctx, s.signupPolicy, signupKey(a.IP)); {
	case errors.Is(err, ErrThrottled):
		s.metrics.Throttled("signup")
		return user.User{}, err
	case err != nil:
		return user.User{}, err
	}
	username = strings.TrimSpace(username)
	fields := map[Field]string{}
	if err := user.ValidateUsername(username); err != nil {
		fields[FieldUsername] = usernameRule
	}
	checkNewPassword(fields, FieldPassword, plain, confirm, username)
	if len(fields) > 0 {
		return user.User{}, &ValidationError{Fields: fields}
	}
	hctx, cancel := s.hashContext(ctx)
	defer cancel()
	hash, err := s.hasher.Hash(hctx, plain)
	if err != nil {
		return user.User{}, unavailable(DepHashing, err)
	}
	u, err := s.users.Create(ctx, user.NewUser{Username: username, PasswordHash: hash, Role: user.RoleUser})
	switch {
	case errors.Is(err, user.ErrDuplicateUsername):
		return user.User{}, &ValidationError{Fields: map[Field]string{FieldUsername: "That username is taken. Choose another."}}
	case err != nil:
		return user.User{}, unavailable(DepDatabase, err)
	}
	self := Actor{UserID: u.ID, Username: u.Username, Role: u.Role, IP: a.IP, Device: a.Device}
	s.record(ctx, self, audit.Event{Action: audit.SignupCompleted, TargetUserID: u.ID, TargetName: u.Username})
	if err := s.startSession(ctx, self, u, began); err != nil {
		return u, err
	}
	return u, nil
}
