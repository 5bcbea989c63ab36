// Package audit keeps Hallpass's audit trail: who signed in, out or failed
// to, whose sessions were revoked, and what administrators did to accounts.
// It holds the Event type, the Store interface, and SQLStore, its
// implementation over SQLite and PostgreSQL.
//
// Events copy the names of the users they involve as they were at the time,
// so the trail still reads correctly after a user is renamed or removed.
package audit

import (
	"context"
	"errors"
	"time"
)

// ErrInvalidEvent is returned by Store.Record for an event it cannot keep:
// one without an action, or with a negative user ID.
var ErrInvalidEvent = errors.New("invalid audit event")

// Action names what happened. Its values are stored, so never change one.
type Action string

// The actions Hallpass records.
const (
	// LoginSucceeded is a successful sign-in; the actor is the user.
	LoginSucceeded Action = "login.succeeded"
	// LoginFailed is a refused sign-in. There is no actor; the target is the
	// account tried, if it exists, and TargetName holds the name as typed.
	LoginFailed Action = "login.failed"
	// Logout is a user signing out of the current session.
	Logout Action = "logout"
	// SessionRevoked is one session ended, by its user or an administrator.
	SessionRevoked Action = "session.revoked"
	// SessionsRevokedAll is every session of a user ended at once.
	SessionsRevokedAll Action = "sessions.revoked_all"
	// SessionsRevokedEveryone is every session of every user ended at once
	// by an administrator (incident response), all but their own; Detail
	// says how many.
	SessionsRevokedEveryone Action = "sessions.revoked_everyone"
	// SessionEvicted is a session ended because its user signed in again
	// beyond the concurrent-session limit.
	SessionEvicted Action = "session.evicted"
	// PasswordChanged is a user's password replaced, by them or an
	// administrator.
	PasswordChanged Action = "password.changed"
	// PasswordChangeFailed is a refused password change: the current
	// password given was wrong. The actor is the signed-in session's user.
	PasswordChangeFailed Action = "password.change_failed"
	// UserDisabled is an account disabled by an administrator.
	UserDisabled Action = "user.disabled"
	// UserEnabled is a disabled account enabled again.
	UserEnabled Action = "user.enabled"
	// UserCreated is an account created by an administrator or the command
	// line.
	UserCreated Action = "user.created"
	// SignupCompleted is an account created by its owner through sign-up.
	SignupCompleted Action = "signup"
	// FactorAdded is a second factor enrolled (Detail: "totp", "passkey
	// NAME", "recovery codes"); recovery codes regenerated count too.
	FactorAdded Action = "factor.added"
	// FactorRemoved is a second factor removed by its owner.
	FactorRemoved Action = "factor.removed"
	// FactorUsed is a second factor accepted at sign-in or for sudo mode
	// (Detail says which, and how many recovery codes are left).
	FactorUsed Action = "factor.used"
	// FactorFailed is a wrong, replayed or expired code (or a refused
	// passkey) at sign-in or enrolment.
	FactorFailed Action = "factor.failed"
	// FactorsReset is every factor of an account removed by an operator
	// (`hallpass user mfa reset`).
	FactorsReset Action = "factors.reset"
	// SudoPassed is a fresh proof of sign-in given for a sensitive action
	// (sudo mode); Detail says which proof.
	SudoPassed Action = "sudo.passed"
	// SudoFailed is a wrong proof at the sudo prompt.
	SudoFailed Action = "sudo.failed"
)

// Event is one entry of the audit trail.
type Event struct {
	// ID is assigned by the store; it orders events recorded at the same
	// instant.
	ID int64
	// At is when the event happened, UTC to the microsecond once stored. A
	// zero At is recorded as the store's current time.
	At time.Time
	// ActorID is the user who acted; 0 for none (anonymous or system).
	ActorID int64
	// ActorName is the actor's username at the time, or "".
	ActorName string
	// Action is what happened.
	Action Action
	// TargetUserID is the user acted upon; 0 for none.
	TargetUserID int64
	// TargetName is the target's username at the time (or as typed, for a
	// failed sign-in), or "".
	TargetName string
	// Detail is free text: a session's device, a reason, a changed value.
	Detail string
	// IP is the client's address, as resolved behind trusted proxies.
	IP string
	// Replica names the Hallpass instance that recorded the event.
	Replica string
}

// ListOptions select and page the events List returns.
type ListOptions struct {
	// Limit caps how many events are returned; zero or less means no cap.
	Limit int
	// Offset skips that many events first; less than zero means none.
	Offset int
	// UserID, when not 0, keeps only the events that user did or that were
	// done to them (actor or target).
	UserID int64
}

// Store keeps the audit trail. Every implementation runs the contract suite
// in package audittest.
type Store interface {
	// Record adds ev, ignoring its ID. It fails with ErrInvalidEvent when ev
	// has no action or a negative user ID. Text that is not valid UTF-8, and
	// NUL bytes, are stored as U+FFFD, since they may come from a client.
	Record(ctx context.Context, ev Event) error
	// List returns the events opts selects, newest first (by At, then by
	// ID).
	List(ctx context.Context, opts ListOptions) ([]Event, error)
	// Count returns how many events opts selects, ignoring its Limit and
	// Offset.
	Count(ctx context.Context, opts ListOptions) (int, error)
}
