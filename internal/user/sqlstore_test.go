package user_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/testsvc"
	"github.com/hallpass/hallpass/internal/user"
	"github.com/hallpass/hallpass/internal/user/usertest"
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

// migratedStore opens and migrates the database at url and returns a store
// over it, closed when t ends.
func migratedStore(t *testing.T, url string, now func() time.Time) *user.SQLStore {
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
	return user.NewSQLStore(db, now)
}

func sqliteStore(t *testing.T) user.Store {
	return migratedStore(t, "sqlite:"+filepath.Join(t.TempDir(), "users.db"), newClock().Now)
}

func TestSQLStoreSQLite(t *testing.T) {
	usertest.Run(t, sqliteStore)
}

func TestSQLStorePostgres(t *testing.T) {
	srv := testsvc.StartPostgres(t)
	usertest.Run(t, func(t *testing.T) user.Store {
		return migratedStore(t, srv.NewDatabase(t), newClock().Now)
	})
}

// TestSQLStoreStampsTimesFromClock checks created and updated times come from
// the injected clock, in UTC and truncated to the microsecond.
func TestSQLStoreStampsTimesFromClock(t *testing.T) {
	clk := newClock()
	s := migratedStore(t, "sqlite:"+filepath.Join(t.TempDir(), "users.db"), clk.Now)
	ctx := t.Context()

	u, err := s.Create(ctx, user.NewUser{Username: "alice", PasswordHash: "h", Role: user.RoleUser})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2030, 1, 2, 10, 4, 6, 623_457_000, time.UTC) // start + one step, in UTC
	if u.CreatedAt != want || u.UpdatedAt != want {
		t.Errorf("Create stamped %v / %v, want %v", u.CreatedAt, u.UpdatedAt, want)
	}

	if err := s.SetDisabled(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	got, err := s.ByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantUpdated := time.Date(2030, 1, 2, 10, 4, 8, 123_457_000, time.UTC) // two steps
	if got.CreatedAt != want || got.UpdatedAt != wantUpdated {
		t.Errorf("after update: %v / %v, want %v / %v", got.CreatedAt, got.UpdatedAt, want, wantUpdated)
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
