package account

import (
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/user"
)

// The errors use cases return; check them with errors.Is (and errors.As for
// the types that carry details).
var (
	// ErrUnavailable: a dependency (session store, database, password
	// hashing capacity) cannot serve the request right now. Nothing is
	// wrong with the request; it may succeed in a few seconds.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrBadCredentials: the username or the password is wrong. Which one
	// is never said.
	ErrBadCredentials = errors.New("incorrect username or password")
	// ErrDisabled: the password was right, but the account is disabled.
	ErrDisabled = errors.New("account disabled")
	// ErrThrottled: too many attempts; see ThrottledError for the wait.
	ErrThrottled = errors.New("too many attempts")
	// ErrTooManySessions: the user is at the session limit under the
	// reject policy; see SessionLimitError for their sessions.
	ErrTooManySessions = errors.New("too many sessions")
	// ErrNotFound: no such user, or no such session.
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the actor may not do this.
	ErrForbidden = errors.New("not allowed")
	// ErrOwnAccount: an administrator tried to disable their own account,
	// which would lock them out with nobody to undo it.
	ErrOwnAccount = errors.New("cannot disable your own account")
	// ErrLastAdmin: disabling the account would leave no enabled
	// administrator, and nobody to enable one again from the admin pages.
	// The database refuses it atomically, however many administrators (or
	// command lines) disable each other at once.
	ErrLastAdmin = errors.New("this is the last enabled administrator: enable or create another administrator first")
	// ErrRevokedInFlight: the account's sessions were ended (disabled,
	// password changed, signed out everywhere) while this sign-in was
	// being checked, or the browser's own session ended meanwhile; no
	// session was started, and signing in again decides afresh.
	ErrRevokedInFlight = errors.New("the account's sessions were ended while signing in")
	// ErrNotSignedIn: the use case needs a signed-in session and the
	// request has none.
	ErrNotSignedIn = errors.New("not signed in")
	// ErrSessionsOutOfReach: the sessions live inside another process (the
	// embedded default, seen from the command line), so single sessions
	// cannot be listed or ended from here.
	ErrSessionsOutOfReach = errors.New("sessions are kept inside the running server (HALLPASS_REDIS_URL is empty), so this command cannot see them; use the admin pages, or run Hallpass with Redis")
	// ErrInvalid: the input breaks a rule; see ValidationError for which.
	ErrInvalid = errors.New("invalid input")
	// ErrReauthRequired: the action is a sensitive one (sudo mode) and the
	// session's last proof of sign-in is older than the sudo window; prove
	// it again (Reauthenticate) and repeat the action.
	ErrReauthRequired = errors.New("confirm it is you: sign-in proof too old for this action")
	// ErrBadCode: the second-factor code is wrong, already used, or from
	// too long ago. Which one is never said.
	ErrBadCode = errors.New("incorrect or already used code")
	// ErrSignInExpired: the half-finished sign-in (password given, second
	// factor awaited) is too old or was tampered with; start again.
	ErrSignInExpired = errors.New("the sign-in took too long; start again")
	// ErrFactorsOff: second factors are not configured on this deployment
	// (no HALLPASS_SECRET_KEY).
	ErrFactorsOff = errors.New("second factors are not enabled on this server")
	// ErrFactorRequired: the policy requires a second factor for this
	// account, and the action would remove the last one.
	ErrFactorRequired = errors.New("a second factor is required for this account: add another before removing this one")
	// ErrMustEnrol: the session may only enrol a second factor (the policy
	// requires one and the account had none at sign-in).
	ErrMustEnrol = errors.New("add a second factor first")
)

// UnavailableError is ErrUnavailable with the dependency that failed and
// its error, for the log.
type UnavailableError struct {
	// Dependency names what failed: "session store", "database" or
	// "password hashing".
	Dependency string
	Err        error
}

func (e *UnavailableError) Error() string        { return e.Dependency + ": " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error        { return e.Err }
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Dependencies an UnavailableError names.
const (
	DepSessions = "session store"
	DepDatabase = "database"
	DepHashing  = "password hashing"
)

// unavailable wraps a dependency's error as ErrUnavailable. A hasher error
// other than a full queue is a bug (bad parameters, a malformed stored
// hash) and stays as it is.
func unavailable(dep string, err error) error {
	if dep == DepHashing && !errors.Is(err, password.ErrBusy) {
		return err
	}
	return &UnavailableError{Dependency: dep, Err: err}
}

// ThrottledError is ErrThrottled with how long to wait.
type ThrottledError struct {
	Wait time.Duration
	// Refused counts the attempts the current wait has refused, this one
	// included.
	Refused int
}

func (e *ThrottledError) Error() string        { return "too many attempts: wait " + e.Wait.String() }
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// SessionLimitError is ErrTooManySessions with the user's live sessions, so
// they can choose one to end and go on.
type SessionLimitError struct {
	User     user.User
	Sessions []session.Record
}

func (e *SessionLimitError) Error() string        { return "too many sessions" }
func (e *SessionLimitError) Is(target error) bool { return target == ErrTooManySessions }

// Field names a piece of input a ValidationError speaks of.
type Field string

// Fields of the account forms.
const (
	FieldUsername        Field = "username"
	FieldPassword        Field = "password"
	FieldConfirmPassword Field = "confirm_password"
	FieldCurrentPassword Field = "current_password"
)

// ValidationError is ErrInvalid with a message per field, in words fit for
// a form or a terminal.
type ValidationError struct {
	Fields map[Field]string
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for f, msg := range e.Fields {
		parts = append(parts, string(f)+": "+msg)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }
