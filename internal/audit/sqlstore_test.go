package audit_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/audit/audittest"
	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/testsvc"
)

// clock is a fake time source that moves forward by a step, with a
// sub-microsecond part, at every reading.
type clock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func newClock() *clock {
	return &clock{
		now:  time.Date(2030, 1, 2, 3, 4, 5, 123_456_789, time.FixedZone("UTC-7", -7*3600)),
		step: 1500*time.Millisecond + 333,
	}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
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
	return "sqlite:" + filepath.Join(t.TempDir(), "audit.db")
}

func TestSQLStoreSQLite(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store {
		return audit.NewSQLStore(migrated(t, sqliteURL(t)), newClock().Now)
	})
}

func TestSQLStorePostgres(t *testing.T) {
	srv := testsvc.StartPostgres(t)
	audittest.Run(t, func(t *testing.T) audit.Store {
		return audit.NewSQLStore(migrated(t, srv.NewDatabase(t)), newClock().Now)
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
			s := audit.NewSQLStore(db, newClock().Now)
			ctx := t.Context()

			if err := s.Record(ctx, audit.Event{Action: audit.LoginFailed, TargetName: "ghost"}); err != nil {
				t.Fatal(err)
			}
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
			// Start plus one and two steps, in UTC, truncated to the microsecond.
			want := []time.Time{
				time.Date(2030, 1, 2, 10, 4, 8, 123_457_000, time.UTC),
				time.Date(2030, 1, 2, 10, 4, 6, 623_457_000, time.UTC),
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
