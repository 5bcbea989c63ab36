package account

import (
	"context"
	"errors"
	"unicode/utf8"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// usernameRule says what a username may be, in words fit for a form.
const usernameRule = "Use 3 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit."

// checkNewPassword adds to fields what is wrong with a new password of the
// user named username and its confirmation, under the name field. It runs
// before any hashing, so a refused password costs no hash.
func checkNewPassword(fields map[Field]string, field Field, plain, confirm, username string) {
	switch err := password.Validate(plain); {
	case errors.Is(err, password.ErrTooShort):
		fields[field] = "Use at least 8 characters."
	case errors.Is(err, password.ErrTooLong):
		fields[field] = "Use at most 256 bytes."
	case !utf8.ValidString(plain):
		fields[field] = "The password contains characters that are not valid text."
	default:
		switch err := password.CheckStrength(plain, username); {
		case errors.Is(err, password.ErrContainsUsername):
			fields[field] = "The password must not contain your user name."
		case errors.Is(err, password.ErrGuessable):
			fields[field] = "This password is too easy to guess: it is a common password or close to one. Use a longer passphrase of unrelated words."
		}
	}
	if plain != confirm && fields[field] == "" {
		fields[FieldConfirmPassword] = "The two passwords do not match."
	}
}

// hashNew hashes a new password.
func (s *Service) hashNew(ctx context.Context, plain string) (string, error) {
	hctx, cancel := s.hashContext(ctx)
	defer cancel()
	hash, err := s.hasher.Hash(hctx, plain)
	if err != nil {
		return "", unavailable(DepHashing, err)
	}
	return hash, nil
}

// ChangePassword replaces the signed-in user's password, once they have
// given the current one: it stores the new hash, ends every other session
// of the user (durably, see EndAllSessions) and gives this one a fresh
// token. Wrong or unfit input is a ValidationError.
func (s *Service) ChangePassword(ctx context.Context, a Actor, current, plain, confirm string) error {
	info, ok := s.sessions.Current(ctx)
	if !ok {
		return ErrNotSignedIn
	}
	u, err := s.users.ByID(ctx, info.UserID)
	if err != nil {
		return unavailable(DepDatabase, err)
	}
	release, err := s.takeShare(ctx, a)
	if err != nil {
		return err
	}
	defer release()
	// The current-password check is a password check like sign-in's, on
	// the same counters: a stolen cookie must not buy unlimited guesses.
	account, client := s.attemptKeys(a, u.Username)
	if err := s.reserve(ctx, s.loginPolicy, account, client); err != nil {
		if errors.Is(err, ErrThrottled) {
			s.metrics.Throttled("password")
		}
		return err
	}
	hctx, cancel := s.hashContext(ctx)
	defer cancel()
	ok, _, err = s.hasher.Verify(hctx, current, u.PasswordHash)
	if err != nil && !errors.Is(err, password.ErrTooLong) {
		s.giveBack(ctx, s.loginPolicy, account, client)
		return unavailable(DepHashing, err)
	}
	fields := map[Field]string{}
	if ok {
		s.clearAccount(ctx, account, client)
	} else {
		s.record(ctx, a, audit.Event{Action: audit.PasswordChangeFailed, TargetUserID: u.ID, TargetName: u.Username, Detail: "wrong current password"})
		fields[FieldCurrentPassword] = "That is not your current password."
	}
	checkNewPassword(fields, FieldPassword, plain, confirm, u.Username)
	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	hash, err := s.hashNew(ctx, plain)
	if err != nil {
		return err
	}
	// The checks above took two password hashes' time: a session signed
	// out meanwhile (say, by its owner's "sign out all other devices")
	// must not go on to change the password. The re-issue below checks it
	// again, atomically with the new session.
	switch live, err := s.sessions.StillLive(ctx); {
	case err != nil:
		return unavailable(DepSessions, err)
	case !live:
		return ErrNotSignedIn
	}
	if err := s.users.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return unavailable(DepDatabase, err)
	}
	if _, err := s.endAll(ctx, u, session.EndedPasswordChanged, true); err != nil {
		return err
	}
	s.record(ctx, a, audit.Event{Action: audit.PasswordChanged, TargetUserID: u.ID, TargetName: u.Username, Detail: "by the user; other sessions signed out"})
	// A privilege-relevant change: this device goes on with a fresh token,
	// proven now, after the revocation above. If this session was itself
	// ended meanwhile (signed out from another device), it stays ended.
	return signedOutIfRevoked(s.startSession(ctx, a, u, s.now()))
}

// SetPassword sets another user's password, as an administrator or from
// the command line, and ends every session of that user.
func (s *Service) SetPassword(ctx context.Context, a Actor, userID int64, plain string) (Ended, error) {
	if !a.IsAdmin() {
		return Ended{}, ErrForbidden
	}
	if err := s.requireProof(ctx, a); err != nil {
		return Ended{}, err
	}
	u, err := s.user(ctx, userID)
	if err != nil {
		return Ended{}, err
	}
	fields := map[Field]string{}
	checkNewPassword(fields, FieldPassword, plain, plain, u.Username)
	if len(fields) > 0 {
		return Ended{}, &ValidationError{Fields: fields}
	}
	hash, err := s.hashNew(ctx, plain)
	if err != nil {
		return Ended{}, err
	}
	if err := s.users.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return Ended{}, unavailable(DepDatabase, err)
	}
	ended, err := s.endAll(ctx, u, session.EndedPasswordChanged, false)
	if err != nil {
		return Ended{}, err
	}
	s.record(ctx, a, audit.Event{Action: audit.PasswordChanged, TargetUserID: u.ID, TargetName: u.Username, Detail: "set by an administrator; every session signed out"})
	return ended, nil
}

// CreateUser creates an account with the given role, as an administrator or
// from the command line.
func (s *Service) CreateUser(ctx context.Context, a Actor, username, plain string, role user.Role) (user.User, error) {
	if !a.IsAdmin() {
		return user.User{}, ErrForbidden
	}
	if err := s.requireProof(ctx, a); err != nil {
		return user.User{}, err
	}
	fields := map[Field]string{}
	if err := user.ValidateUsername(username); err != nil {
		fields[FieldUsername] = usernameRule
	}
	checkNewPassword(fields, FieldPassword, plain, plain, username)
	if len(fields) > 0 {
		return user.User{}, &ValidationError{Fields: fields}
	}
	hash, err := s.hashNew(ctx, plain)
	if err != nil {
		return user.User{}, err
	}
	u, err := s.users.Create(ctx, user.NewUser{Username: username, PasswordHash: hash, Role: role})
	switch {
	case errors.Is(err, user.ErrDuplicateUsername):
		return user.User{}, &ValidationError{Fields: map[Field]string{FieldUsername: "That username is taken."}}
	case errors.Is(err, user.ErrInvalidRole):
		return user.User{}, err
	case err != nil:
		return user.User{}, unavailable(DepDatabase, err)
	}
	s.record(ctx, a, audit.Event{Action: audit.UserCreated, TargetUserID: u.ID, TargetName: u.Username, Detail: "role " + string(u.Role)})
	return u, nil
}
