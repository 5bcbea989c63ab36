package audit_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/audit/audittest"
	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/database/databasetest"
	"github.com/hallpass/hallpass/internal/testkit"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// start is where the tests' clocks start: off UTC and off the microsecond,
// so a store that stores times without normalising them shows.
var start = time.Date(2030, 1, 2, 3, 4, 5, 123_456_789, time.FixedZone("UTC-7", -7*3600))

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
	return "sqlite:" + filepath.Join(t.TempDir(), "audit.db")
}

func TestSQLStoreSQLite(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store {
		return audit.NewSQLStore(migrated(t, sqliteURL(t)), testkit.NewClock(start).Now)
	})
}

func TestSQLStorePostgres(t *testing.T) {
	srv := testsvc.StartPostgres(t)
	audittest.Run(t, func(t *testing.T) audit.Store {
		return audit.NewSQLStore(migrated(t, srv.NewDatabase(t)), testkit.NewClock(start).Now)
	})
}

// TestSQLStoreDetails checks what the contract cannot see through the
// interface, on both dialects: times come from the injected clock, and "no
// user" is NULL in the table, not 0, so SQL over the table reads naturally.
func TestSQLStoreDetails(t *testing.T) {
	srv := testsvc.StartPostgres(t)
	for _, tc := range []struct {
		dialect string
		url     func(t *testing.T) string
	}{
		{"SQLite", sqliteURL},
		{"Postgres", func(t *testing.T) string { return srv.NewDatabase(t) }},
	} {
		t.Run(tc.dialect, func(t *testing.T) {
			t.Parallel()
			db := migrated(t, tc.url(t))
			clk := testkit.NewClock(start)
			s := audit.NewSQLStore(db, clk.Now)
			ctx := t.Context()

			if err := s.Record(ctx, audit.Event{Action: audit.LoginFailed, TargetName: "ghost"}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(1500*time.Millisecond + 333)
			if err := s.Record(ctx, audit.Event{Action: audit.UserCreated, ActorID: 3, TargetUserID: 4}); err != nil {
				t.Fatal(err)
			}

			events, err := s.List(ctx, audit.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 2 {
				t.Fatalf("List returned %d events, want 2", len(events))
			}
			// Newest first; in UTC, truncated to the microsecond.
			want := []time.Time{
				time.Date(2030, 1, 2, 10, 4, 6, 623_457_000, time.UTC), // start + 1.500000333s
				time.Date(2030, 1, 2, 10, 4, 5, 123_456_000, time.UTC), // start
			}
			for i, ev := range events {
				if ev.At != want[i] {
					t.Errorf("event %d stamped %v, want %v", i, ev.At, want[i])
				}
			}

			var nullActors, nullTargets int
			err = db.SQL.QueryRowContext(ctx,
				`SELECT
					(SELECT count(*) FROM audit_events WHERE actor_id IS NULL),
					(SELECT count(*) FROM audit_events WHERE target_user_id IS NULL)`).
				Scan(&nullActors, &nullTargets)
			if err != nil {
				t.Fatal(err)
			}
			if nullActors != 1 || nullTargets != 1 {
				t.Errorf("NULL actor_id rows = %d, NULL target_user_id rows = %d; want 1 and 1", nullActors, nullTargets)
			}
		})
	}
}

// TestSQLStoreGivesUpOnAStuckDatabase checks that no call waits on the
// database for longer than the store's query timeout, even when the caller
// set no deadline: here every statement queues behind another transaction's
// lock on the audit_events table, as it would behind a stuck one.
func TestSQLStoreGivesUpOnAStuckDatabase(t *testing.T) {
	srv := testsvc.StartPostgres(t)
	db := migrated(t, srv.NewDatabase(t))
	const timeout = 200 * time.Millisecond
	s := audit.NewSQLStore(db, time.Now, audit.WithQueryTimeout(timeout))
	if err := s.Record(t.Context(), audit.Event{Action: audit.LoginSucceeded, ActorID: 1}); err != nil {
		t.Fatal(err)
	}

	release := databasetest.LockTable(t, db, "audit_events")
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Record", func(ctx context.Context) error {
			return s.Record(ctx, audit.Event{Action: audit.LoginFailed, TargetName: "alice"})
		}},
		{"List", func(ctx context.Context) error { _, err := s.List(ctx, audit.ListOptions{}); return err }},
		{"ListByUser", func(ctx context.Context) error { _, err := s.List(ctx, audit.ListOptions{UserID: 1}); return err }},
		{"Count", func(ctx context.Context) error { _, err := s.Count(ctx, audit.ListOptions{}); return err }},
		{"CountByUser", func(ctx context.Context) error { _, err := s.Count(ctx, audit.ListOptions{UserID: 1}); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			databasetest.ExpectDeadlineExceeded(t, timeout, func() error { return tc.call(context.Background()) })
		})
	}
	t.Run("ACallersLaterDeadlineDoesNotLiftTheBound", func(t *testing.T) {
		databasetest.ExpectDeadlineExceeded(t, timeout, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			_, err := s.Count(ctx, audit.ListOptions{})
			return err
		})
	})
	t.Run("ACallersSoonerDeadlineWins", func(t *testing.T) {
		const sooner = 50 * time.Millisecond
		databasetest.ExpectDeadlineExceeded(t, sooner, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), sooner)
			defer cancel()
			_, err := s.Count(ctx, audit.ListOptions{})
			return err
		})
	})

	// The statements the store gave up on do not stay queued on the server,
	// to run once the lock goes; and then the same store answers again, with
	// nothing written.
	databasetest.ExpectNoLockWaiters(t, db)
	release()
	if n, err := s.Count(t.Context(), audit.ListOptions{}); err != nil || n != 1 {
		t.Errorf("Count after the lock was released = %d, %v; want 1 (the timed-out Record not written)", n, err)
	}
}
