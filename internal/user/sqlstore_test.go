package user_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/database/databasetest"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/internal/user/usertest"
)

// start is where the tests' clocks start: off UTC and off the microsecond,
// so a store that stores times without normalising them shows.
var start = time.Date(2030, 1, 2, 3, 4, 5, 123_456_789, time.FixedZone("UTC-7", -7*3600))

// step is an odd amount of time to move a clock by, with a sub-microsecond
// part.
const step = 1500*time.Millisecond + 333

// tickingClock returns a clock that moves on by step at every reading, so
// that the contract, which wants a new user's created and updated times to
// match, catches a store that reads its clock twice for one write.
func tickingClock() func() time.Time {
	clk := testkit.NewClock(start)
	return func() time.Time {
		clk.Advance(step)
		return clk.Now()
	}
}

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

func sqliteURL(t *testing.T) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "users.db")
}

func TestSQLStoreSQLite(t *testing.T) {
	usertest.Run(t, func(t *testing.T) user.Store {
		return user.NewSQLStore(migrated(t, sqliteURL(t)), tickingClock())
	})
}

func TestSQLStorePostgres(t *testing.T) {
	srv := testsvc.StartPostgres(t)
	usertest.Run(t, func(t *testing.T) user.Store {
		db := migrated(t, srv.NewDatabase(t))
		// The concurrent-disable tests open 20 connections at once, round
		// after round. Keeping them idle between rounds makes the disables
		// of a round start together (a sharper attack) and the rounds
		// fast: reconnecting cost ~1 s a round on 2 cores, the disables
		// themselves ~50 ms.
		db.SQL.SetMaxIdleConns(32)
		return user.NewSQLStore(db, tickingClock())
	})
}

// TestSQLStoreStampsTimesFromClock checks created and updated times come from
// the injected clock, in UTC and truncated to the microsecond.
func TestSQLStoreStampsTimesFromClock(t *testing.T) {
	clk := testkit.NewClock(start)
	s := user.NewSQLStore(migrated(t, sqliteURL(t)), clk.Now)
	ctx := t.Context()

	u, err := s.Create(ctx, user.NewUser{Username: "alice", PasswordHash: "h", Role: user.RoleUser})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2030, 1, 2, 10, 4, 5, 123_456_000, time.UTC) // start, in UTC
	if u.CreatedAt != want || u.UpdatedAt != want {
		t.Errorf("Create stamped %v / %v, want %v", u.CreatedAt, u.UpdatedAt, want)
	}

	clk.Advance(step)
	if err := s.SetDisabled(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	got, err := s.ByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantUpdated := time.Date(2030, 1, 2, 10, 4, 6, 623_457_000, time.UTC) // a step later
	if got.CreatedAt != want || got.UpdatedAt != wantUpdated {
		t.Errorf("after update: %v / %v, want %v / %v", got.CreatedAt, got.UpdatedAt, want, wantUpdated)
	}
}

// TestSQLStoreGivesUpOnAStuckDatabase checks that no call waits on the
// database for longer than the store's query timeout, even when the caller
// set no deadline: here every statement queues behind another transaction's
// lock on the users table, as it would behind a stuck one.
func TestSQLStoreGivesUpOnAStuckDatabase(t *testing.T) {
	srv := testsvc.StartPostgres(t)
	db := migrated(t, srv.NewDatabase(t))
	const timeout = 200 * time.Millisecond
	s := user.NewSQLStore(db, time.Now, user.WithQueryTimeout(timeout))
	alice, err := s.Create(t.Context(), user.NewUser{Username: "alice", PasswordHash: "h", Role: user.RoleUser})
	if err != nil {
		t.Fatal(err)
	}

	release := databasetest.LockTable(t, db, "users")
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Create", func(ctx context.Context) error {
			_, err := s.Create(ctx, user.NewUser{Username: "bob", PasswordHash: "h", Role: user.RoleUser})
			return err
		}},
		{"ByID", func(ctx context.Context) error { _, err := s.ByID(ctx, alice.ID); return err }},
		{"ByUsername", func(ctx context.Context) error { _, err := s.ByUsername(ctx, "alice"); return err }},
		{"List", func(ctx context.Context) error { _, err := s.List(ctx, user.ListOptions{}); return err }},
		{"Count", func(ctx context.Context) error { _, err := s.Count(ctx); return err }},
		{"SetPasswordHash", func(ctx context.Context) error { return s.SetPasswordHash(ctx, alice.ID, "h2") }},
		{"SetDisabled", func(ctx context.Context) error { return s.SetDisabled(ctx, alice.ID, true) }},
		{"SetSessionsValidAfter", func(ctx context.Context) error {
			return s.SetSessionsValidAfter(ctx, alice.ID, time.Now())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			databasetest.ExpectDeadlineExceeded(t, timeout, func() error { return tc.call(context.Background()) })
		})
	}
	t.Run("ACallersLaterDeadlineDoesNotLiftTheBound", func(t *testing.T) {
		databasetest.ExpectDeadlineExceeded(t, timeout, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			_, err := s.Count(ctx)
			return err
		})
	})
	t.Run("ACallersSoonerDeadlineWins", func(t *testing.T) {
		const sooner = 50 * time.Millisecond
		databasetest.ExpectDeadlineExceeded(t, sooner, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), sooner)
			defer cancel()
			_, err := s.Count(ctx)
			return err
		})
	})

	// The statements the store gave up on do not stay queued on the server,
	// to run once the lock goes; and then the same store answers again, with
	// nothing written.
	databasetest.ExpectNoLockWaiters(t, db)
	release()
	got, err := s.ByID(t.Context(), alice.ID)
	if err != nil {
		t.Fatalf("ByID after the lock was released: %v", err)
	}
	if got != alice {
		t.Errorf("alice after the timed-out updates = %+v, want unchanged %+v", got, alice)
	}
	if n, err := s.Count(t.Context()); err != nil || n != 1 {
		t.Errorf("Count after the lock was released = %d, %v; want 1 (no bob)", n, err)
	}
}

func TestValidateUsername(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wantErr string // part of the message; "" for valid
	}{
		{"abc", ""},
		{"alice", ""},
		{"Alice.Smith-2_x", ""},
		{"007", ""},
		{strings.Repeat("a", 64), ""},
		{"", "3 to 64"},
		{"ab", "3 to 64"},
		{strings.Repeat("a", 65), "3 to 64"},
		{".alice", "start with a letter or a digit"},
		{"_alice", "start with a letter or a digit"},
		{"-alice", "start with a letter or a digit"},
		{"al ice", "only letters"},
		{"alice@example.com", "only letters"},
		{"alicé", "only letters"},
		{"al%ce", "only letters"},
		{"alice\n", "only letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := user.ValidateUsername(tc.name)
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("ValidateUsername(%q) = %v, want nil", tc.name, err)
				}
				return
			}
			if !errors.Is(err, user.ErrInvalidUsername) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ValidateUsername(%q) = %v, want ErrInvalidUsername saying %q", tc.name, err, tc.wantErr)
			}
		})
	}
}
