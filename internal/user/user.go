// Package user holds Hallpass's user accounts: the User type, the rules for
// usernames, the Store interface, and SQLStore, its implementation over
// SQLite and PostgreSQL. Passwords arrive here already hashed (see package
// password).
package user

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors returned by stores; check them with errors.Is.
var (
	// ErrNotFound means no user has the given ID or username.
	ErrNotFound = errors.New("user not found")
	// ErrDuplicateUsername means the username is taken, ignoring case.
	ErrDuplicateUsername = errors.New("username already taken")
	// ErrInvalidUsername wraps a message saying what is wrong with a username.
	ErrInvalidUsername = errors.New("invalid username")
	// ErrInvalidRole means a role other than RoleUser or RoleAdmin.
	ErrInvalidRole = errors.New("invalid role")
	// ErrLastAdmin means disabling the user would leave no enabled
	// administrator, and nobody to enable one again from the admin pages.
	ErrLastAdmin = errors.New("last enabled administrator")
)

// Role is what a user may do.
type Role string

// The roles.
const (
	// RoleUser may sign in and manage their own account and sessions.
	RoleUser Role = "user"
	// RoleAdmin may also manage other users and their sessions.
	RoleAdmin Role = "admin"
)

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool { return r == RoleUser || r == RoleAdmin }

// User is an account. Times are UTC, to the microsecond.
type User struct {
	ID       int64
	Username string
	// PasswordHash is an argon2id PHC string.
	PasswordHash string
	Role         Role
	// Disabled users cannot sign in.
	Disabled bool
	// SessionsValidAfter revokes every session created before it; zero if
	// the user's sessions were never revoked.
	SessionsValidAfter time.Time
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// NewUser is what Store.Create needs to make a User.
type NewUser struct {
	Username     string
	PasswordHash string
	Role         Role
}

// ListOptions select and page the users List returns.
type ListOptions struct {
	// Search keeps users whose username contains it, ignoring case.
	Search string
	// Limit caps how many users are returned; zero or less means no cap.
	Limit int
	// Offset skips that many users first.
	Offset int
}

// Store keeps users. Every implementation runs the contract suite in package
// usertest.
type Store interface {
	// Create adds a user, failing with ErrDuplicateUsername when the name is
	// taken (ignoring case) and ErrInvalidUsername or ErrInvalidRole for bad
	// input.
	Create(ctx context.Context, nu NewUser) (User, error)
	// ByID returns the user with the ID, or ErrNotFound.
	ByID(ctx context.Context, id int64) (User, error)
	// ByUsername returns the user with the name, ignoring case, or ErrNotFound.
	ByUsername(ctx context.Context, name string) (User, error)
	// List returns users ordered by username.
	List(ctx context.Context, opts ListOptions) ([]User, error)
	// Count returns how many users there are.
	Count(ctx context.Context) (int, error)
	// SetPasswordHash replaces the user's password hash, or fails with
	// ErrNotFound.
	SetPasswordHash(ctx context.Context, id int64, hash string) error
	// SetDisabled disables or re-enables the user, or fails with ErrNotFound.
	// It refuses to disable the last enabled administrator with
	// ErrLastAdmin, atomically: however many disables run at once, from
	// however many processes, at least one enabled administrator remains
	// if there was one. Disabling a user already disabled always succeeds.
	SetDisabled(ctx context.Context, id int64, disabled bool) error
	// SetSessionsValidAfter invalidates the user's sessions created before t
	// (the zero time clears it), or fails with ErrNotFound.
	SetSessionsValidAfter(ctx context.Context, id int64, t time.Time) error
	// SetAllSessionsValidAfter invalidates every user's sessions created
	// before t, in one statement, and returns how many users it changed.
	// The time only moves forward: a user whose sessions-valid-after time
	// is already t or later keeps it (and is not counted), as the session
	// store keeps the latest whole-user revocation. t must not be zero.
	SetAllSessionsValidAfter(ctx context.Context, t time.Time) (int, error)
	// ListIDs returns the IDs of users with an ID above afterID, ascending,
	// at most limit of them (zero or less means no cap): pass the last ID of
	// one page as afterID of the next to walk every user, each page costing
	// the same however deep it is.
	ListIDs(ctx context.Context, afterID int64, limit int) ([]int64, error)
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
}

// Username length limits, in characters (all ASCII).
const (
	MinUsernameLength = 3
	MaxUsernameLength = 64
)

// ValidateUsername checks that name is 3 to 64 ASCII letters, digits, '.',
// '_' or '-', starting with a letter or digit. The error wraps
// ErrInvalidUsername and says what is wrong in words fit for a form.
func ValidateUsername(name string) error {
	if len(name) < MinUsernameLength || len(name) > MaxUsernameLength {
		return fmt.Errorf("%w: must be %d to %d characters long", ErrInvalidUsername, MinUsernameLength, MaxUsernameLength)
	}
	if !isAlnum(name[0]) {
		return fmt.Errorf("%w: must start with a letter or a digit", ErrInvalidUsername)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: may contain only letters, digits, '.', '_' and '-'", ErrInvalidUsername)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
