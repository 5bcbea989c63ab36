// Package factor keeps each account's second factors: a TOTP secret
// (encrypted at rest), one-time recovery codes (stored hashed) and passkeys
// (WebAuthn credentials). The rules about them — when a code is accepted,
// who may add or remove one, what is audited — live in package account; this
// package only stores, and makes each "use once" atomic.
package factor

import (
	"context"
	"errors"
	"time"
)

// Errors returned by stores; check them with errors.Is.
var (
	// ErrNotFound means no such factor (or no such user handle).
	ErrNotFound = errors.New("factor not found")
	// ErrDuplicate means the passkey's credential ID is already registered.
	ErrDuplicate = errors.New("credential already registered")
)

// Summary is what an account has enrolled.
type Summary struct {
	// TOTP is true once an authenticator app's secret is confirmed.
	TOTP bool
	// Passkeys counts registered passkeys.
	Passkeys int
	// RecoveryCodesLeft counts unused recovery codes.
	RecoveryCodesLeft int
}

// Any reports whether the account has a factor that can sign in (TOTP or a
// passkey); recovery codes alone do not count.
func (s Summary) Any() bool { return s.TOTP || s.Passkeys > 0 }

// Passkey is one registered WebAuthn credential.
type Passkey struct {
	ID     int64
	UserID int64
	// Name is the owner's label ("Work laptop").
	Name string
	// CredentialID is the authenticator's credential ID, unique everywhere.
	CredentialID []byte
	// Credential is the library's credential record (public key, sign
	// count, flags, transports) as JSON: opaque to this package.
	Credential []byte
	CreatedAt  time.Time
	// LastUsedAt is zero until the passkey is first used.
	LastUsedAt time.Time
}

// Store keeps factors. Every implementation runs the contract suite in
// package factortest. Times are UTC, to the microsecond.
type Store interface {
	// Summary returns what the user has enrolled, in one query.
	Summary(ctx context.Context, userID int64) (Summary, error)

	// PutPendingTOTP stores a new, not yet confirmed TOTP secret for the
	// user, replacing any earlier unconfirmed one; a confirmed secret is
	// left in place until ConfirmTOTP replaces it.
	PutPendingTOTP(ctx context.Context, userID int64, secret []byte, at time.Time) error
	// PendingTOTP returns the unconfirmed secret, or ErrNotFound.
	PendingTOTP(ctx context.Context, userID int64) ([]byte, error)
	// ConfirmTOTP makes the pending secret the user's TOTP secret (replacing
	// a confirmed one), with step as the last step used, or ErrNotFound if
	// there is no pending secret.
	ConfirmTOTP(ctx context.Context, userID int64, step int64, at time.Time) error
	// TOTP returns the confirmed secret, or ErrNotFound.
	TOTP(ctx context.Context, userID int64) ([]byte, error)
	// UseTOTPStep records step as used if it is later than the last step
	// used, atomically: of any number of concurrent calls with the same or
	// earlier steps, at most one returns true. False means a replay (or an
	// older code). ErrNotFound if no confirmed secret.
	UseTOTPStep(ctx context.Context, userID int64, step int64, at time.Time) (bool, error)
	// RemoveTOTP removes the confirmed and the pending secret; false if there
	// was neither.
	RemoveTOTP(ctx context.Context, userID int64) (bool, error)

	// ReplaceRecoveryCodes replaces the user's recovery codes by the given
	// hashes (each a SHA-256 of a code), all unused.
	ReplaceRecoveryCodes(ctx context.Context, userID int64, hashes [][]byte, at time.Time) error
	// UseRecoveryCode marks the unused code with this hash as used,
	// atomically (of concurrent calls with one code, exactly one gets
	// true), and returns how many unused codes are left.
	UseRecoveryCode(ctx context.Context, userID int64, hash []byte, at time.Time) (used bool, left int, err error)
	// RemoveRecoveryCodes removes every recovery code; it returns how many
	// unused ones there were.
	RemoveRecoveryCodes(ctx context.Context, userID int64) (int, error)

	// WebAuthnHandle returns the user's WebAuthn user handle (64 random
	// bytes, not derived from the user ID), creating it on first use; the
	// same value for every caller, on any replica.
	WebAuthnHandle(ctx context.Context, userID int64) ([]byte, error)
	// UserByWebAuthnHandle returns the user ID of a handle, or ErrNotFound.
	UserByWebAuthnHandle(ctx context.Context, handle []byte) (int64, error)
	// AddPasskey stores a new passkey and returns it with its ID, or fails
	// with ErrDuplicate.
	AddPasskey(ctx context.Context, p Passkey) (Passkey, error)
	// Passkeys returns the user's passkeys, oldest first.
	Passkeys(ctx context.Context, userID int64) ([]Passkey, error)
	// PasskeyByCredentialID returns the passkey, or ErrNotFound.
	PasskeyByCredentialID(ctx context.Context, credentialID []byte) (Passkey, error)
	// UsePasskey stores the credential record after a use (the sign count
	// moves) and the time of use, or ErrNotFound.
	UsePasskey(ctx context.Context, id int64, credential []byte, at time.Time) error
	// RemovePasskey removes the user's passkey with the ID; false if the
	// user has none with it.
	RemovePasskey(ctx context.Context, userID, id int64) (bool, error)

	// Reset removes every factor of the user (TOTP, recovery codes,
	// passkeys; not the WebAuthn handle) in one transaction and returns
	// what there was.
	Reset(ctx context.Context, userID int64) (Summary, error)
}
