package factor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/factor/factortest"
	"github.com/hallpass/hallpass/internal/secretbox"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/internal/user"
)

// migrated opens and migrates the database at url, closed when t ends.
func migrated(t *testing.T, url string) *database.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	db, err := database.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close database: %v", err)
		}
	})
	if err := database.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	return db
}

// openSQLite and postgresOpener each return a fresh, migrated database per
// call, for one test.
func openSQLite(t *testing.T) *database.DB {
	db := migrated(t, "sqlite:"+filepath.Join(t.TempDir(), "factors.db"))
	// SQLite runs one writer at a time; the others sleep in its busy
	// handler, in steps of up to 100 ms. With 50 connections a round of the
	// race tests took ~0.7 s under -race and, beside the rest of the suite on
	// a loaded 2-core machine, a writer could outwait the 2 s query bound;
	// with 8 it takes ~0.2 s. Eight connections still race for real.
	db.SQL.SetMaxOpenConns(8)
	return db
}

func postgresOpener(t *testing.T) func(t *testing.T) *database.DB {
	srv := testsvc.StartPostgres(t)
	return func(t *testing.T) *database.DB {
		db := migrated(t, srv.NewDatabase(t))
		// The race tests open 50 connections at once, round after round:
		// kept idle between rounds, the next round's uses start together.
		db.SQL.SetMaxIdleConns(64)
		return db
	}
}

// createUsers adds users with the given names to db, the rows factors
// refer to, and returns their IDs.
func createUsers(t *testing.T, db *database.DB, names ...string) []int64 {
	t.Helper()
	users := user.NewSQLStore(db, time.Now)
	ids := make([]int64, len(names))
	for i, name := range names {
		u, err := users.Create(t.Context(), user.NewUser{Username: name, PasswordHash: "h", Role: user.RoleUser})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = u.ID
	}
	return ids
}

func newBox(t *testing.T, keys ...[]byte) *secretbox.Box {
	t.Helper()
	b, err := secretbox.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// key returns a distinct 32-byte key for each fill byte.
func key(fill byte) []byte { return bytes.Repeat([]byte{fill}, secretbox.MinKeyBytes) }

func runContract(t *testing.T, open func(t *testing.T) *database.DB) {
	factortest.Run(t, func(t *testing.T) (factor.Store, []int64) {
		db := open(t)
		return factor.NewSQLStore(db, newBox(t, key(1))), createUsers(t, db, "alice", "bob")
	})
}

func TestSQLStoreSQLite(t *testing.T) {
	runContract(t, openSQLite)
}

func TestSQLStorePostgres(t *testing.T) {
	runContract(t, postgresOpener(t))
}

func TestSQLStoreSealsSecretsSQLite(t *testing.T) {
	runSealing(t, openSQLite)
}

func TestSQLStoreSealsSecretsPostgres(t *testing.T) {
	runSealing(t, postgresOpener(t))
}

// runSealing checks what the contract cannot see: how TOTP secrets lie in
// the database.
func runSealing(t *testing.T, open func(t *testing.T) *database.DB) {
	for _, tc := range []struct {
		name string
		test func(t *testing.T, db *database.DB, alice, bob int64)
	}{
		{"SecretsAreNotStoredInClear", testNotInClear},
		{"AStoreWithoutTheKeyCannotReadTheSecret", testWrongKey},
		{"RotationReSealsUnderTheFirstKey", testRotation},
		{"ASecretCopiedToAnotherUserDoesNotOpen", testCopiedSecret},
		{"WithoutABoxOnlyTOTPSecretsAreRefused", testNoBox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := open(t)
			ids := createUsers(t, db, "alice", "bob")
			tc.test(t, db, ids[0], ids[1])
		})
	}
}

var at = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// rawTOTP reads the user's sealed secrets as they are stored.
func rawTOTP(t *testing.T, db *database.DB, userID int64) (secret, pending []byte) {
	t.Helper()
	err := db.SQL.QueryRowContext(t.Context(),
		db.Rebind(`SELECT secret, pending_secret FROM totp_secrets WHERE user_id = ?`), userID).Scan(&secret, &pending)
	if err != nil {
		t.Fatalf("read raw TOTP row: %v", err)
	}
	return secret, pending
}

// enrol gives the user a confirmed and a pending secret.
func enrol(t *testing.T, s factor.Store, userID int64, confirmed, pending string) {
	t.Helper()
	for _, err := range []error{
		s.PutPendingTOTP(t.Context(), userID, []byte(confirmed), at),
		s.ConfirmTOTP(t.Context(), userID, 1, at),
		s.PutPendingTOTP(t.Context(), userID, []byte(pending), at),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func checkReads(t *testing.T, s factor.Store, userID int64, confirmed, pending string) {
	t.Helper()
	if got, err := s.TOTP(t.Context(), userID); err != nil || string(got) != confirmed {
		t.Errorf("TOTP = %q, %v; want %q", got, err, confirmed)
	}
	if got, err := s.PendingTOTP(t.Context(), userID); err != nil || string(got) != pending {
		t.Errorf("PendingTOTP = %q, %v; want %q", got, err, pending)
	}
}

func testNotInClear(t *testing.T, db *database.DB, alice, _ int64) {
	confirmed, pending := "JBSWY3DPEHPK3PXP-confirmed", "JBSWY3DPEHPK3PXP-pending"
	enrol(t, factor.NewSQLStore(db, newBox(t, key(1))), alice, confirmed, pending)
	secret, pend := rawTOTP(t, db, alice)
	for _, stored := range [][]byte{secret, pend} {
		for _, plain := range []string{confirmed, pending, "JBSWY3DPEHPK3PXP"} {
			if bytes.Contains(stored, []byte(plain)) {
				t.Errorf("stored secret %x holds %q in clear", stored, plain)
			}
		}
	}
}

func testWrongKey(t *testing.T, db *database.DB, alice, _ int64) {
	enrol(t, factor.NewSQLStore(db, newBox(t, key(1))), alice, "confirmed", "pending")
	other := factor.NewSQLStore(db, newBox(t, key(2)))
	for name, read := range map[string]func(context.Context, int64) ([]byte, error){
		"TOTP":        other.TOTP,
		"PendingTOTP": other.PendingTOTP,
	} {
		got, err := read(t.Context(), alice)
		if !errors.Is(err, secretbox.ErrOpen) || got != nil {
			t.Errorf("%s under another key = %q, %v; want no secret and secretbox.ErrOpen", name, got, err)
		}
	}
}

func testRotation(t *testing.T, db *database.DB, alice, _ int64) {
	oldKey, newKey := key(1), key(2)
	enrol(t, factor.NewSQLStore(db, newBox(t, oldKey)), alice, "confirmed", "pending")

	rotated := factor.NewSQLStore(db, newBox(t, newKey, oldKey))
	checkReads(t, rotated, alice, "confirmed", "pending")

	// Both were written back under the new key: a store with the new key
	// alone reads them, and they are no longer stale.
	checkReads(t, factor.NewSQLStore(db, newBox(t, newKey)), alice, "confirmed", "pending")
	secret, pending := rawTOTP(t, db, alice)
	newOnly := newBox(t, newKey)
	for name, sealed := range map[string][]byte{"secret": secret, "pending_secret": pending} {
		if _, stale, err := newOnly.Open(fmt.Sprintf("totp-secret:%d", alice), sealed); err != nil || stale {
			t.Errorf("%s after rotation: stale=%t, %v; want sealed under the new key", name, stale, err)
		}
	}
}

// testCopiedSecret is someone who can write to the database, but holds no
// key, copying their own sealed secret (whose codes they can make) into
// another user's row.
func testCopiedSecret(t *testing.T, db *database.DB, alice, bob int64) {
	s := factor.NewSQLStore(db, newBox(t, key(1)))
	enrol(t, s, alice, "alice's", "alice's pending")
	enrol(t, s, bob, "bob's", "bob's pending")
	secret, pending := rawTOTP(t, db, alice)
	if _, err := db.SQL.ExecContext(t.Context(),
		db.Rebind(`UPDATE totp_secrets SET secret = ?, pending_secret = ? WHERE user_id = ?`), secret, pending, bob); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TOTP(t.Context(), bob); !errors.Is(err, secretbox.ErrOpen) {
		t.Errorf("bob's TOTP after the copy = %q, %v; want secretbox.ErrOpen", got, err)
	}
	if got, err := s.PendingTOTP(t.Context(), bob); !errors.Is(err, secretbox.ErrOpen) {
		t.Errorf("bob's pending TOTP after the copy = %q, %v; want secretbox.ErrOpen", got, err)
	}
}

// testNoBox is the command line, which runs without the secret key,
// resetting a user's factors.
func testNoBox(t *testing.T, db *database.DB, alice, _ int64) {
	enrol(t, factor.NewSQLStore(db, newBox(t, key(1))), alice, "confirmed", "pending")
	s := factor.NewSQLStore(db, nil)
	if err := s.PutPendingTOTP(t.Context(), alice, []byte("x"), at); !errors.Is(err, factor.ErrNoSecretKey) {
		t.Errorf("PutPendingTOTP without a box: err = %v, want ErrNoSecretKey", err)
	}
	if _, err := s.TOTP(t.Context(), alice); !errors.Is(err, factor.ErrNoSecretKey) {
		t.Errorf("TOTP without a box: err = %v, want ErrNoSecretKey", err)
	}
	if _, err := s.PendingTOTP(t.Context(), alice); !errors.Is(err, factor.ErrNoSecretKey) {
		t.Errorf("PendingTOTP without a box: err = %v, want ErrNoSecretKey", err)
	}
	if sum, err := s.Reset(t.Context(), alice); err != nil || !sum.TOTP {
		t.Errorf("Reset without a box = %+v, %v; want the TOTP removed", sum, err)
	}
}
