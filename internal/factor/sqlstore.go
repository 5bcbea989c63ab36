package factor

import (
	"context"
	"crypto/rand"
	"database/sql"
	_ "embed" // queries live in queries/*.sql
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/secretbox"
)

var (
	//go:embed queries/summary.sql
	summarySQL string
	//go:embed queries/put_pending_totp.sql
	putPendingTOTPSQL string
	//go:embed queries/pending_totp.sql
	pendingTOTPSQL string
	//go:embed queries/totp.sql
	totpSQL string
	//go:embed queries/reseal_pending_totp.sql
	resealPendingTOTPSQL string
	//go:embed queries/reseal_totp.sql
	resealTOTPSQL string
	//go:embed queries/confirm_totp.sql
	confirmTOTPSQL string
	//go:embed queries/use_totp_step.sql
	useTOTPStepSQL string
	//go:embed queries/has_totp.sql
	hasTOTPSQL string
	//go:embed queries/remove_totp.sql
	removeTOTPSQL string
	//go:embed queries/add_recovery_code.sql
	addRecoveryCodeSQL string
	//go:embed queries/use_recovery_code.sql
	useRecoveryCodeSQL string
	//go:embed queries/recovery_codes_left.sql
	recoveryCodesLeftSQL string
	//go:embed queries/remove_recovery_codes.sql
	removeRecoveryCodesSQL string
	//go:embed queries/add_webauthn_handle.sql
	addWebAuthnHandleSQL string
	//go:embed queries/webauthn_handle.sql
	webAuthnHandleSQL string
	//go:embed queries/user_by_webauthn_handle.sql
	userByWebAuthnHandleSQL string
	//go:embed queries/add_passkey.sql
	addPasskeySQL string
	//go:embed queries/passkeys.sql
	passkeysSQL string
	//go:embed queries/passkey_by_credential_id.sql
	passkeyByCredentialIDSQL string
	//go:embed queries/use_passkey.sql
	usePasskeySQL string
	//go:embed queries/remove_passkey.sql
	removePasskeySQL string
	//go:embed queries/remove_passkeys.sql
	removePasskeysSQL string
)

// WebAuthnHandleBytes is the length of a WebAuthn user handle, the most
// the WebAuthn specification allows.
const WebAuthnHandleBytes = 64

// SQLStore is the Store over an SQLite or PostgreSQL database migrated with
// database.Migrate. TOTP secrets are sealed with a secretbox.Box before they
// are written, so the database alone does not give them away.
type SQLStore struct {
	db  *database.DB
	box *secretbox.Box

	// The queries, rebound once for the database's dialect.
	summary, putPendingTOTP, pendingTOTP, totp, resealPendingTOTP, resealTOTP, confirmTOTP string
	useTOTPStep, hasTOTP, removeTOTP                                                       string
	addRecoveryCode, useRecoveryCode, recoveryCodesLeft, removeRecoveryCodes               string
	addWebAuthnHandle, webAuthnHandle, userByWebAuthnHandle                                string
	addPasskey, passkeys, passkeyByCredentialID, usePasskey, removePasskey, removePasskeys string
}

var _ Store = (*SQLStore)(nil)

// ErrNoSecretKey is returned by the methods that store or read a TOTP
// secret of a store made without a secretbox.Box.
var ErrNoSecretKey = errors.New("no secret key to seal or open TOTP secrets")

// NewSQLStore returns a store over db that seals TOTP secrets with box.
// Secrets box opens only with an older key are sealed again under its
// first key as they are read, so that after a key rotation the database
// converges on the new key.
//
// box may be nil where no secret key is configured (the command line
// resetting a user's factors): every method then works but PutPendingTOTP,
// PendingTOTP and TOTP, which fail with ErrNoSecretKey.
func NewSQLStore(db *database.DB, box *secretbox.Box) *SQLStore {
	return &SQLStore{
		db:                    db,
		box:                   box,
		summary:               db.Rebind(summarySQL),
		putPendingTOTP:        db.Rebind(putPendingTOTPSQL),
		pendingTOTP:           db.Rebind(pendingTOTPSQL),
		totp:                  db.Rebind(totpSQL),
		resealPendingTOTP:     db.Rebind(resealPendingTOTPSQL),
		resealTOTP:            db.Rebind(resealTOTPSQL),
		confirmTOTP:           db.Rebind(confirmTOTPSQL),
		useTOTPStep:           db.Rebind(useTOTPStepSQL),
		hasTOTP:               db.Rebind(hasTOTPSQL),
		removeTOTP:            db.Rebind(removeTOTPSQL),
		addRecoveryCode:       db.Rebind(addRecoveryCodeSQL),
		useRecoveryCode:       db.Rebind(useRecoveryCodeSQL),
		recoveryCodesLeft:     db.Rebind(recoveryCodesLeftSQL),
		removeRecoveryCodes:   db.Rebind(removeRecoveryCodesSQL),
		addWebAuthnHandle:     db.Rebind(addWebAuthnHandleSQL),
		webAuthnHandle:        db.Rebind(webAuthnHandleSQL),
		userByWebAuthnHandle:  db.Rebind(userByWebAuthnHandleSQL),
		addPasskey:            db.Rebind(addPasskeySQL),
		passkeys:              db.Rebind(passkeysSQL),
		passkeyByCredentialID: db.Rebind(passkeyByCredentialIDSQL),
		usePasskey:            db.Rebind(usePasskeySQL),
		removePasskey:         db.Rebind(removePasskeySQL),
		removePasskeys:        db.Rebind(removePasskeysSQL),
	}
}

// querier is what the store runs statements on: the pool, or a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// bound gives ctx the default query deadline unless it has a sooner one.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return database.BoundQuery(ctx, 0)
}

// normTime is how every time is stored: UTC, to the microsecond, which is
// PostgreSQL's precision, so a time reads back exactly as it was written.
func normTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: normTime(t), Valid: !t.IsZero()}
}

// totpPurpose is the additional data a user's TOTP secret is sealed with.
// It names the user, so a sealed secret copied into another user's row (by
// someone who can write to the database but holds no key) does not open:
// they cannot give a victim an authenticator secret they know.
func totpPurpose(userID int64) string {
	return "totp-secret:" + strconv.FormatInt(userID, 10)
}

// Summary implements Store.
func (s *SQLStore) Summary(ctx context.Context, userID int64) (Summary, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var (
		sum  Summary
		totp int
	)
	err := s.db.SQL.QueryRowContext(ctx, s.summary, userID, userID, userID).
		Scan(&totp, &sum.Passkeys, &sum.RecoveryCodesLeft)
	if err != nil {
		return Summary{}, fmt.Errorf("factors of user %d: %w", userID, err)
	}
	sum.TOTP = totp > 0
	return sum, nil
}

// PutPendingTOTP implements Store.
func (s *SQLStore) PutPendingTOTP(ctx context.Context, userID int64, secret []byte, at time.Time) error {
	if s.box == nil {
		return fmt.Errorf("store pending TOTP secret of user %d: %w", userID, ErrNoSecretKey)
	}
	sealed := s.box.Seal(totpPurpose(userID), secret)
	ctx, cancel := bound(ctx)
	defer cancel()
	if _, err := s.db.SQL.ExecContext(ctx, s.putPendingTOTP, userID, sealed, normTime(at)); err != nil {
		return fmt.Errorf("store pending TOTP secret of user %d: %w", userID, err)
	}
	return nil
}

// PendingTOTP implements Store.
func (s *SQLStore) PendingTOTP(ctx context.Context, userID int64) ([]byte, error) {
	secret, err := s.readTOTP(ctx, userID, s.pendingTOTP, s.resealPendingTOTP)
	if err != nil {
		return nil, fmt.Errorf("pending TOTP secret of user %d: %w", userID, err)
	}
	return secret, nil
}

// ConfirmTOTP implements Store.
func (s *SQLStore) ConfirmTOTP(ctx context.Context, userID int64, step int64, at time.Time) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	n, err := rowsAffected(s.db.SQL.ExecContext(ctx, s.confirmTOTP, normTime(at), step, userID))
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("confirm TOTP secret of user %d: %w", userID, err)
	}
	return nil
}

// TOTP implements Store.
func (s *SQLStore) TOTP(ctx context.Context, userID int64) ([]byte, error) {
	secret, err := s.readTOTP(ctx, userID, s.totp, s.resealTOTP)
	if err != nil {
		return nil, fmt.Errorf("TOTP secret of user %d: %w", userID, err)
	}
	return secret, nil
}

// readTOTP reads one sealed secret with query and opens it. One sealed under
// an old key is sealed again under the current one and written back with
// reseal, which changes the row only if it still holds what was read.
func (s *SQLStore) readTOTP(ctx context.Context, userID int64, query, reseal string) ([]byte, error) {
	if s.box == nil {
		return nil, ErrNoSecretKey
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	var sealed []byte
	err := s.db.SQL.QueryRowContext(ctx, query, userID).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && sealed == nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	purpose := totpPurpose(userID)
	secret, stale, err := s.box.Open(purpose, sealed)
	if err != nil {
		return nil, err
	}
	if stale {
		// Best effort: the secret is good either way, and the next read
		// tries again; an error here must not fail a sign-in.
		_, _ = s.db.SQL.ExecContext(ctx, reseal, s.box.Seal(purpose, secret), userID, sealed)
	}
	return secret, nil
}

// UseTOTPStep implements Store.
func (s *SQLStore) UseTOTPStep(ctx context.Context, userID int64, step int64, at time.Time) (bool, error) {
	// at is not stored: nothing reads when a code was last used.
	ctx, cancel := bound(ctx)
	defer cancel()
	n, err := rowsAffected(s.db.SQL.ExecContext(ctx, s.useTOTPStep, step, userID, step))
	if err != nil {
		return false, fmt.Errorf("use TOTP step of user %d: %w", userID, err)
	}
	if n > 0 {
		return true, nil
	}
	// Refused: a replay, or no confirmed secret at all. Which one does not
	// matter for the refusal, so a second statement is fine here.
	var confirmed int
	if err := s.db.SQL.QueryRowContext(ctx, s.hasTOTP, userID).Scan(&confirmed); err != nil {
		return false, fmt.Errorf("use TOTP step of user %d: %w", userID, err)
	}
	if confirmed == 0 {
		return false, fmt.Errorf("use TOTP step of user %d: %w", userID, ErrNotFound)
	}
	return false, nil
}

// RemoveTOTP implements Store.
func (s *SQLStore) RemoveTOTP(ctx context.Context, userID int64) (bool, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	existed, _, err := s.deleteTOTP(ctx, s.db.SQL, userID)
	if err != nil {
		return false, fmt.Errorf("remove TOTP secret of user %d: %w", userID, err)
	}
	return existed, nil
}

// deleteTOTP deletes the user's row and says whether there was one, and
// whether it held a confirmed secret.
func (s *SQLStore) deleteTOTP(ctx context.Context, q querier, userID int64) (existed, confirmed bool, err error) {
	err = q.QueryRowContext(ctx, s.removeTOTP, userID).Scan(&confirmed)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, confirmed, nil
}

// ReplaceRecoveryCodes implements Store.
func (s *SQLStore) ReplaceRecoveryCodes(ctx context.Context, userID int64, hashes [][]byte, at time.Time) error {
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := s.deleteRecoveryCodes(ctx, tx, userID); err != nil {
			return err
		}
		created := normTime(at)
		for _, h := range hashes {
			if _, err := tx.ExecContext(ctx, s.addRecoveryCode, userID, h, created); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replace recovery codes of user %d: %w", userID, err)
	}
	return nil
}

// UseRecoveryCode implements Store.
func (s *SQLStore) UseRecoveryCode(ctx context.Context, userID int64, hash []byte, at time.Time) (used bool, left int, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	n, err := rowsAffected(s.db.SQL.ExecContext(ctx, s.useRecoveryCode, normTime(at), userID, hash))
	if err != nil {
		return false, 0, fmt.Errorf("use recovery code of user %d: %w", userID, err)
	}
	if err := s.db.SQL.QueryRowContext(ctx, s.recoveryCodesLeft, userID).Scan(&left); err != nil {
		return false, 0, fmt.Errorf("count recovery codes of user %d: %w", userID, err)
	}
	return n > 0, left, nil
}

// RemoveRecoveryCodes implements Store.
func (s *SQLStore) RemoveRecoveryCodes(ctx context.Context, userID int64) (int, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	unused, err := s.deleteRecoveryCodes(ctx, s.db.SQL, userID)
	if err != nil {
		return 0, fmt.Errorf("remove recovery codes of user %d: %w", userID, err)
	}
	return unused, nil
}

// deleteRecoveryCodes deletes the user's codes and counts the unused ones
// among them.
func (s *SQLStore) deleteRecoveryCodes(ctx context.Context, q querier, userID int64) (unused int, err error) {
	rows, err := q.QueryContext(ctx, s.removeRecoveryCodes, userID)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var isUnused bool
		if err := rows.Scan(&isUnused); err != nil {
			return 0, err
		}
		if isUnused {
			unused++
		}
	}
	return unused, rows.Err()
}

// WebAuthnHandle implements Store.
func (s *SQLStore) WebAuthnHandle(ctx context.Context, userID int64) ([]byte, error) {
	fresh := make([]byte, WebAuthnHandleBytes)
	_, _ = rand.Read(fresh) // never fails: crypto/rand crashes the program rather than return an error
	ctx, cancel := bound(ctx)
	defer cancel()
	if _, err := s.db.SQL.ExecContext(ctx, s.addWebAuthnHandle, userID, fresh); err != nil {
		return nil, fmt.Errorf("store WebAuthn handle of user %d: %w", userID, err)
	}
	var handle []byte
	if err := s.db.SQL.QueryRowContext(ctx, s.webAuthnHandle, userID).Scan(&handle); err != nil {
		return nil, fmt.Errorf("read WebAuthn handle of user %d: %w", userID, err)
	}
	return handle, nil
}

// UserByWebAuthnHandle implements Store.
func (s *SQLStore) UserByWebAuthnHandle(ctx context.Context, handle []byte) (int64, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var userID int64
	err := s.db.SQL.QueryRowContext(ctx, s.userByWebAuthnHandle, handle).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("user of WebAuthn handle: %w", err)
	}
	return userID, nil
}

// AddPasskey implements Store. The times are stored as given, normalised;
// CreatedAt must be set.
func (s *SQLStore) AddPasskey(ctx context.Context, p Passkey) (Passkey, error) {
	if p.CreatedAt.IsZero() {
		return Passkey{}, fmt.Errorf("add passkey of user %d: zero CreatedAt", p.UserID)
	}
	if len(p.CredentialID) == 0 {
		return Passkey{}, fmt.Errorf("add passkey of user %d: empty credential ID", p.UserID)
	}
	p.CreatedAt = normTime(p.CreatedAt)
	if !p.LastUsedAt.IsZero() {
		p.LastUsedAt = normTime(p.LastUsedAt)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	err := s.db.SQL.QueryRowContext(ctx, s.addPasskey,
		p.UserID, p.Name, p.CredentialID, p.Credential, p.CreatedAt, nullTime(p.LastUsedAt)).Scan(&p.ID)
	if database.IsUniqueViolation(err) {
		err = ErrDuplicate
	}
	if err != nil {
		return Passkey{}, fmt.Errorf("add passkey of user %d: %w", p.UserID, err)
	}
	return p, nil
}

// Passkeys implements Store.
func (s *SQLStore) Passkeys(ctx context.Context, userID int64) ([]Passkey, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.db.SQL.QueryContext(ctx, s.passkeys, userID)
	if err != nil {
		return nil, fmt.Errorf("passkeys of user %d: %w", userID, err)
	}
	defer rows.Close()
	var keys []Passkey
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, fmt.Errorf("passkeys of user %d: %w", userID, err)
		}
		keys = append(keys, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("passkeys of user %d: %w", userID, err)
	}
	return keys, nil
}

// PasskeyByCredentialID implements Store.
func (s *SQLStore) PasskeyByCredentialID(ctx context.Context, credentialID []byte) (Passkey, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	p, err := scanPasskey(s.db.SQL.QueryRowContext(ctx, s.passkeyByCredentialID, credentialID))
	if err != nil {
		return Passkey{}, fmt.Errorf("passkey by credential ID: %w", err)
	}
	return p, nil
}

// UsePasskey implements Store.
func (s *SQLStore) UsePasskey(ctx context.Context, id int64, credential []byte, at time.Time) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	n, err := rowsAffected(s.db.SQL.ExecContext(ctx, s.usePasskey, credential, normTime(at), id))
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("use passkey %d: %w", id, err)
	}
	return nil
}

// RemovePasskey implements Store.
func (s *SQLStore) RemovePasskey(ctx context.Context, userID, id int64) (bool, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	n, err := rowsAffected(s.db.SQL.ExecContext(ctx, s.removePasskey, id, userID))
	if err != nil {
		return false, fmt.Errorf("remove passkey %d of user %d: %w", id, userID, err)
	}
	return n > 0, nil
}

// Reset implements Store.
func (s *SQLStore) Reset(ctx context.Context, userID int64) (Summary, error) {
	var sum Summary
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if _, sum.TOTP, err = s.deleteTOTP(ctx, tx, userID); err != nil {
			return err
		}
		if sum.RecoveryCodesLeft, err = s.deleteRecoveryCodes(ctx, tx, userID); err != nil {
			return err
		}
		n, err := rowsAffected(tx.ExecContext(ctx, s.removePasskeys, userID))
		sum.Passkeys = int(n)
		return err
	})
	if err != nil {
		return Summary{}, fmt.Errorf("reset factors of user %d: %w", userID, err)
	}
	return sum, nil
}

// inTx runs fn in a transaction under the query deadline, committing if fn
// succeeds. On SQLite the transaction takes the write lock as it begins
// (database.Open sets _txlock=immediate).
func (s *SQLStore) inTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := s.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(ctx, tx); err != nil {
		_ = tx.Rollback() // fn's error is the one to report
		return err
	}
	return tx.Commit()
}

// rowsAffected takes ExecContext's results and returns how many rows the
// statement changed.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// scanPasskey reads one row of the passkeys columns, in the order the
// queries select them.
func scanPasskey(row interface{ Scan(...any) error }) (Passkey, error) {
	var (
		p        Passkey
		lastUsed sql.NullTime
	)
	err := row.Scan(&p.ID, &p.UserID, &p.Name, &p.CredentialID, &p.Credential, &p.CreatedAt, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Passkey{}, ErrNotFound
	}
	if err != nil {
		return Passkey{}, err
	}
	// Drivers return times in the local zone or a fixed +00:00 one.
	p.CreatedAt = p.CreatedAt.UTC()
	if lastUsed.Valid {
		p.LastUsedAt = lastUsed.Time.UTC()
	}
	return p, nil
}
